package tmpfs

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

type mountEntry struct {
	mountPoint   string
	fsType       string
	source       string
	options      string // per mount, e.g. ro,nosuid
	superOptions string // per superblock, e.g. rw,size=64k,noswap
}

const mountinfoPath = "/proc/self/mountinfo"

func readMountinfo() ([]mountEntry, error) {
	data, err := os.ReadFile(mountinfoPath)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", mountinfoPath, err)
	}
	return parseMountinfo(string(data))
}

// parseMountinfo follows proc(5): the optional fields before " - " vary in
// number, so the filesystem fields are found after the separator.
func parseMountinfo(data string) ([]mountEntry, error) {
	var out []mountEntry
	for line := range strings.Lines(data) {
		line = strings.TrimSuffix(line, "\n")
		if line == "" {
			continue
		}
		fields := strings.Split(line, " ")
		sep := -1
		for i := 6; i < len(fields); i++ {
			if fields[i] == "-" {
				sep = i
				break
			}
		}
		if sep < 0 || len(fields) < sep+4 {
			return nil, fmt.Errorf("parse %s: malformed line %q", mountinfoPath, line)
		}
		mp, err := unescapeMountinfo(fields[4])
		if err != nil {
			return nil, fmt.Errorf("parse %s: line %q: %w", mountinfoPath, line, err)
		}
		src, err := unescapeMountinfo(fields[sep+2])
		if err != nil {
			return nil, fmt.Errorf("parse %s: line %q: %w", mountinfoPath, line, err)
		}
		out = append(out, mountEntry{
			mountPoint:   mp,
			fsType:       fields[sep+1],
			source:       src,
			options:      fields[5],
			superOptions: fields[sep+3],
		})
	}
	return out, nil
}

// unescapeMountinfo undoes the kernel's octal escaping of space, tab,
// newline and backslash (\040, \011, \012, \134).
func unescapeMountinfo(s string) (string, error) {
	if !strings.Contains(s, `\`) {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			b.WriteByte(s[i])
			continue
		}
		if i+3 >= len(s) {
			return "", fmt.Errorf("truncated escape in %q", s)
		}
		v := 0
		for _, c := range []byte(s[i+1 : i+4]) {
			if c < '0' || c > '7' {
				return "", fmt.Errorf("bad escape in %q", s)
			}
			v = v*8 + int(c-'0')
		}
		if v > 0xff {
			return "", fmt.Errorf("bad escape in %q", s)
		}
		b.WriteByte(byte(v))
		i += 3
	}
	return b.String(), nil
}

// mountAt returns the topmost mount on dir, or nil. Later lines in
// mountinfo are mounted later, so the last match is the visible one.
func mountAt(dir string) (*mountEntry, error) {
	entries, err := readMountinfo()
	if err != nil {
		return nil, err
	}
	var top *mountEntry
	for i := range entries {
		if entries[i].mountPoint == dir {
			top = &entries[i]
		}
	}
	return top, nil
}

func mountsUnder(dir string) ([]string, error) {
	entries, err := readMountinfo()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if strings.HasPrefix(e.mountPoint, dir+"/") {
			out = append(out, e.mountPoint)
		}
	}
	return out, nil
}

// Mounts lists the tmpfs mount points directly under root, sorted, so a restarting daemon can find the mounts it left behind.
func Mounts(root string) ([]string, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("resolve %s: %w", root, err)
	}
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		abs = real
	}
	entries, err := readMountinfo()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if e.fsType == "tmpfs" && e.mountPoint != abs && filepath.Dir(e.mountPoint) == abs {
			out = append(out, e.mountPoint)
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}
