"""Models: the zoo registry, ONNX export with every layer exposed, controls and user ONNX files."""
