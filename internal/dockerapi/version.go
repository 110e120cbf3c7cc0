package dockerapi

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// APIVersion is an Engine API version, <major>.<minor>.
type APIVersion struct{ Major, Minor int }

// ParseVersion reads "1.41". Each part is at most 4 digits: the header it
// comes from is the daemon's.
func ParseVersion(s string) (APIVersion, error) {
	maj, minor, ok := strings.Cut(strings.TrimSpace(s), ".")
	a, errA := part(maj)
	b, errB := part(minor)
	if !ok || errA != nil || errB != nil {
		return APIVersion{}, errors.New("want <major>.<minor>, such as 1.41")
	}
	return APIVersion{a, b}, nil
}

func part(s string) (int, error) {
	if s == "" || len(s) > 4 || strings.Trim(s, "0123456789") != "" {
		return 0, strconv.ErrSyntax
	}
	return strconv.Atoi(s)
}

// Less orders versions.
func (v APIVersion) Less(o APIVersion) bool {
	return v.Major < o.Major || (v.Major == o.Major && v.Minor < o.Minor)
}

func (v APIVersion) String() string { return fmt.Sprintf("%d.%d", v.Major, v.Minor) }
