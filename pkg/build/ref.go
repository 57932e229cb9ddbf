package build

import "strings"

// NormalizeRef returns the short, comparable form of an image reference:
// the registry prefixes engines add for local and Docker Hub images
// (localhost/, docker.io/, docker.io/library/) are removed and a missing tag
// becomes ":latest". "poststack/postgres", "localhost/poststack/postgres:latest"
// and "docker.io/poststack/postgres:latest" all normalise to
// "poststack/postgres:latest".
func NormalizeRef(ref string) string {
	r := strings.ToLower(strings.TrimSpace(ref))
	for _, p := range []string{"index.docker.io/library/", "docker.io/library/", "index.docker.io/", "docker.io/", "localhost/"} {
		if strings.HasPrefix(r, p) {
			r = r[len(p):]
			break
		}
	}
	if strings.Contains(r, "@") {
		return r
	}
	if i := strings.LastIndexByte(r, ':'); i < 0 || strings.Contains(r[i:], "/") {
		r += ":latest"
	}
	return r
}

// repository is NormalizeRef without the tag.
func repository(ref string) string {
	r := NormalizeRef(ref)
	if i := strings.IndexByte(r, '@'); i >= 0 {
		return r[:i]
	}
	if i := strings.LastIndexByte(r, ':'); i >= 0 && !strings.Contains(r[i:], "/") {
		return r[:i]
	}
	return r
}

// namespace is the first path element of a normalised reference ("poststack"
// for "poststack/postgres:latest"), "" when it has a single element.
func namespace(ref string) string {
	repo := repository(ref)
	if i := strings.IndexByte(repo, '/'); i >= 0 {
		return repo[:i]
	}
	return ""
}
