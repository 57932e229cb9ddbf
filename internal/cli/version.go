package cli

import (
	"runtime"
	"runtime/debug"
)

// stampedVersion is set at link time by release builds:
//
//	go build -ldflags "-X github.com/poststack/poststack/internal/cli.stampedVersion=v1.2.3"
//
// It is the one package-level variable here, written only by the linker.
var stampedVersion string

// Version is the --version line: "<bin> <version> (<vcs revision>, <go
// version>)", from the linker stamp or the module build information.
func Version(bin string) string {
	info, _ := debug.ReadBuildInfo()
	return formatVersion(bin, stampedVersion, info)
}

func formatVersion(bin, stamped string, info *debug.BuildInfo) string {
	version, revision, goVersion := stamped, "unknown", runtime.Version()
	if info != nil {
		if version == "" && info.Main.Version != "" && info.Main.Version != "(devel)" {
			version = info.Main.Version
		}
		if info.GoVersion != "" {
			goVersion = info.GoVersion
		}
		var dirty bool
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				revision = s.Value
				if len(revision) > 12 {
					revision = revision[:12]
				}
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
		if dirty && revision != "unknown" {
			revision += "-dirty"
		}
	}
	if version == "" {
		version = "dev"
	}
	return bin + " " + version + " (" + revision + ", " + goVersion + ")"
}
