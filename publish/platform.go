package publish

import (
	"regexp"
	"strings"
)

// architectures are the values accepted for Options.Architecture: the
// GOARCH names that OCI platforms use and that Linux runs on.
var architectures = map[string]bool{
	"amd64": true, "arm64": true, "arm": true, "386": true,
	"ppc64le": true, "ppc64": true, "s390x": true, "riscv64": true,
	"loong64": true, "mips64le": true, "mips64": true, "mipsle": true, "mips": true,
}

// archAliases are the kernel's (uname -m) spellings of those names.
var archAliases = map[string]string{
	"x86_64": "amd64", "x86-64": "amd64", "x64": "amd64",
	"aarch64": "arm64", "armv8": "arm64",
	"i386": "386", "i686": "386", "x86": "386",
	"armhf": "arm", "armv7": "arm", "armv7l": "arm", "armel": "arm",
	"powerpc64le": "ppc64le", "riscv": "riscv64", "loongarch64": "loong64",
}

// elementRE is what a variant or OS may look like: one safe path element of
// the mounted tree, which the mount would otherwise rename.
var elementRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// checkArchitecture accepts a GOARCH name and explains the usual mistakes.
func checkArchitecture(arch string) error {
	if arch == "" {
		return &OptionError{Option: "arch", Value: arch, Reason: "the architecture is required, e.g. amd64 or arm64"}
	}
	if architectures[arch] {
		return nil
	}
	if a, ok := archAliases[strings.ToLower(arch)]; ok {
		return &OptionError{Option: "arch", Value: arch, Reason: "OCI platforms use Go's names: did you mean " + a + "?"}
	}
	if architectures[strings.ToLower(arch)] {
		return &OptionError{Option: "arch", Value: arch, Reason: "architectures are lower case: did you mean " + strings.ToLower(arch) + "?"}
	}
	return &OptionError{Option: "arch", Value: arch, Reason: "unknown architecture; want one of amd64, arm64, arm, 386, ppc64le, ppc64, s390x, riscv64, loong64, mips64le, mips64, mipsle, mips"}
}

// checkElement accepts a variant or OS name that is a safe directory name.
func checkElement(option, v string) error {
	if !elementRE.MatchString(v) {
		return &OptionError{Option: option, Value: v, Reason: "want letters, digits, '.', '_' or '-' (starting with a letter or digit, at most 128)"}
	}
	return nil
}
