# Present so that pytest puts this folder on sys.path: the tests then run from a checkout
# (`pytest examples/automed-tcn`) as well as against the installed package.
