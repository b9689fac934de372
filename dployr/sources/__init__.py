"""Where a release's code comes from: git remotes, local paths; validated before any use."""
