package ephemeral

import "testing"

func TestImageRef(t *testing.T) {
	tests := []struct{ image, engine, want string }{
		{"poststack/postgres:latest", "podman", "localhost/poststack/postgres:latest"},
		{"postgres:16", "podman", "localhost/postgres:16"},
		{"localhost/poststack/postgres:latest", "podman", "localhost/poststack/postgres:latest"},
		{"docker.io/library/postgres:16", "podman", "docker.io/library/postgres:16"},
		{"registry:5000/pg", "podman", "registry:5000/pg"},
		{"poststack/postgres:latest", "docker", "poststack/postgres:latest"},
	}
	for _, tt := range tests {
		if got := imageRef(tt.image, tt.engine); got != tt.want {
			t.Errorf("imageRef(%q, %q) = %q, want %q", tt.image, tt.engine, got, tt.want)
		}
	}
}

func TestEngineOf(t *testing.T) {
	for host, want := range map[string]string{
		"unix:///run/podman/podman.sock": "podman",
		"unix:///var/run/docker.sock":    "docker",
		"":                               "docker",
	} {
		if got := engineOf(host); got != want {
			t.Errorf("engineOf(%q) = %q, want %q", host, got, want)
		}
	}
}
