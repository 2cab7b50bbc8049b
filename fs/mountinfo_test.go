package fs

import "testing"

func TestParseMountInfo(t *testing.T) {
	line := `61 24 0:53 / /mnt/my\040os ro,nosuid,nodev,relatime shared:33 - fuse.osimagefs osimagefs:127.0.0.1:5000/os rw,user_id=0,group_id=0,default_permissions`
	m, ok := parseMountInfo(line)
	if !ok {
		t.Fatal("not parsed")
	}
	want := MountInfo{Device: "0:53", Dir: "/mnt/my os", Options: "ro,nosuid,nodev,relatime", FSType: "fuse.osimagefs",
		Source: "osimagefs:127.0.0.1:5000/os", SuperOptions: "rw,user_id=0,group_id=0,default_permissions"}
	if m != want {
		t.Fatalf("got %+v\nwant %+v", m, want)
	}
	if _, ok := parseMountInfo("too short"); ok {
		t.Fatal("a short line parsed")
	}
}

func TestUnescapeMountInfo(t *testing.T) {
	for in, want := range map[string]string{
		`/mnt/os`:               "/mnt/os",
		`/mnt/my\040os`:         "/mnt/my os",
		`/mnt/tab\011x\134y`:    "/mnt/tab\tx\\y",
		`/mnt/trailing\04`:      `/mnt/trailing\04`,
		`/mnt/not\x20an\escape`: `/mnt/not\x20an\escape`,
	} {
		if got := UnescapeMountInfo(in); got != want {
			t.Errorf("UnescapeMountInfo(%q) = %q, want %q", in, got, want)
		}
	}
}
