// The package's version, written into what it produces (for example the `source` of a fixture made
// by `glam fixture`), so that a file names the implementation that computed it.

/// This package's version (semantic versioning; bumped with each release of the repository).
public let glamVersion = "0.5.0"
