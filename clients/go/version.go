package nervebus

// Version is the release of this module: the repository's VERSION file, whose tag for Go is
// clients/go/v<Version>. scripts/set-version.sh writes it, and a test fails when the two differ.
const Version = "0.1.0"
