"""Integration tests: the real app, the real command line, real processes."""

#: seconds a browser test waits for the page to show something: a bound on waiting on a busy machine,
#: never a verdict (a healthy page shows it in well under a second)
WAIT_S = 60
