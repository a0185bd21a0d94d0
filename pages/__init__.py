"""The dashboard's pages: each one a module, or a package with a module per card, that registers itself
with Dash (`dash.register_page`; Dash imports every file here that calls it).

Pages (path: module):
    /              overview/     leaderboard and across-model figures (3, 4, S1, S3, S4, S8)
    /dataset       dataset/      stimuli, sites, site correlations (S12), receptive fields (S2)
    /sites         sites/        one site, its best units, Figure 2
    /layers        layers        where the best units are (6, S7, S9)
    /runner-ups    runnerups     every site's top-K r (7, S10)
    /feature-maps  featuremaps   feature maps and positions (8, S11, S13)
    /controls      controls      rotations (9) and the controls
    /decoding      decoding      category decoding (5, S5, S6)
    /compare       compare       two models side by side
    /unit          unit          one unit: its sites, responses, receptive field
    (any other)    not_found_404

Every page validates its URL with backend.params, reads data through backend.data, and builds each
card with one function returning (figure, frame) that both its callback and its export call.
"""
