package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// stamp is what goes into the binary and the package names.
type stamp struct {
	version    string // as given or described, e.g. v1.2.0-3-gabc1234-dirty
	pkgVersion string // for deb and rpm, e.g. 1.2.0+3.gabc1234.dirty
	msiVersion string // for the MSI, three numbers, e.g. 1.2.0
	commit     string
	date       string    // RFC 3339, UTC
	mtime      time.Time // file times inside the packages
}

func stampFromGit(ctx context.Context, root, version string) (stamp, error) {
	git := func(args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, "git", args...)
		cmd.Dir = root
		var errb bytes.Buffer
		cmd.Stderr = &errb
		out, err := cmd.Output()
		if err != nil {
			return "", fmt.Errorf("git %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(errb.Bytes()))
		}
		return strings.TrimSpace(string(out)), nil
	}
	var st stamp
	var err error
	if version == "" {
		if version, err = git("describe", "--tags", "--always", "--dirty"); err != nil {
			return st, fmt.Errorf("%w (or pass -version)", err)
		}
	}
	if st.commit, err = git("rev-parse", "HEAD"); err != nil {
		return st, err
	}
	// The commit's time, or SOURCE_DATE_EPOCH, so a rebuild of one commit
	// gives the same binaries and packages.
	secs := os.Getenv("SOURCE_DATE_EPOCH")
	if secs == "" {
		if secs, err = git("log", "-1", "--format=%ct"); err != nil {
			return st, err
		}
	}
	n, err := strconv.ParseInt(secs, 10, 64)
	if err != nil {
		return st, fmt.Errorf("build time %q: want unix seconds", secs)
	}
	st.mtime = time.Unix(n, 0).UTC()
	st.date = st.mtime.Format(time.RFC3339)
	st.version = version
	if st.pkgVersion, err = packageVersion(version); err != nil {
		return st, err
	}
	if st.msiVersion, err = msiVersion(version); err != nil {
		return st, err
	}
	return st, nil
}

// describeRe splits git describe output: tag, commits since it, abbreviated
// hash, dirty mark.
var describeRe = regexp.MustCompile(`^(.*?)(?:-([0-9]+)-g([0-9a-f]+))?(-dirty)?$`)

// bareHash is what describe --always prints when no tag is reachable.
var bareHash = regexp.MustCompile(`^[0-9a-f]{7,40}$`)

var unsafeVersionChars = regexp.MustCompile(`[^A-Za-z0-9.+~]`)

// packageVersion turns a tag or git describe output into a version dpkg and
// rpm both accept and order the same way: v1.2.0 → 1.2.0; 1.2.0-rc.1 →
// 1.2.0~rc.1 (before 1.2.0); v1.2.0-3-gabc1234-dirty → 1.2.0+3.gabc1234.dirty
// (after 1.2.0); a bare commit abc1234 → 0.0.0+gabc1234.
func packageVersion(v string) (string, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return "", fmt.Errorf("empty version")
	}
	m := describeRe.FindStringSubmatch(strings.TrimPrefix(v, "v"))
	tag, n, hash, dirty := m[1], m[2], m[3], m[4] != ""
	var meta []string
	if tag == "" || tag[0] < '0' || tag[0] > '9' || bareHash.MatchString(tag) {
		// No tag: describe --always printed the commit alone.
		meta = append(meta, "g"+tag)
		tag = "0.0.0"
	}
	tag = strings.ReplaceAll(tag, "-", "~")
	if n != "" {
		meta = append(meta, n, "g"+hash)
	}
	if dirty {
		meta = append(meta, "dirty")
	}
	out := tag
	if len(meta) > 0 {
		out += "+" + strings.Join(meta, ".")
	}
	return unsafeVersionChars.ReplaceAllString(out, "."), nil
}

// msiVersion is the leading major.minor.build of the version (0.0.0 without
// a tag), within the MSI's limits (255.255.65535).
func msiVersion(v string) (string, error) {
	v = strings.TrimSpace(v)
	nums := regexp.MustCompile(`^v?([0-9]+)(?:\.([0-9]+))?(?:\.([0-9]+))?`).FindStringSubmatch(v)
	if nums == nil || bareHash.MatchString(strings.TrimSuffix(v, "-dirty")) {
		return "0.0.0", nil
	}
	limits := []int{255, 255, 65535}
	parts := make([]string, 3)
	for i := range parts {
		s := nums[i+1]
		if s == "" {
			s = "0"
		}
		n, err := strconv.Atoi(s)
		if err != nil || n > limits[i] {
			return "", fmt.Errorf("version %q: an MSI version is major.minor.build up to 255.255.65535", v)
		}
		parts[i] = strconv.Itoa(n)
	}
	return strings.Join(parts, "."), nil
}
