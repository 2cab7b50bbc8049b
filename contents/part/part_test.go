package part_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/osimagefs/osimagefs/contents/node"
	"github.com/osimagefs/osimagefs/contents/node/nodetest"
	"github.com/osimagefs/osimagefs/contents/part"
	"github.com/osimagefs/osimagefs/test/fixture"
)

// sfdisk builds a disk of size bytes at path from an sfdisk script.
func sfdisk(t testing.TB, path string, size int64, script string) {
	t.Helper()
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, size); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sfdisk", "-q", path)
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sfdisk: %v: %s", err, out)
	}
}

// sfdiskList is what sfdisk --json says of the disk at path, as Partitions.
func sfdiskList(t testing.TB, path string) []part.Partition {
	t.Helper()
	out, err := exec.Command("sfdisk", "--json", path).Output()
	if err != nil {
		t.Fatalf("sfdisk --json: %v", err)
	}
	var doc struct {
		Table struct {
			Label      string `json:"label"`
			SectorSize int64  `json:"sectorsize"`
			Partitions []struct {
				Node        string `json:"node"`
				Start, Size int64
				Type, Name  string
			} `json:"partitions"`
		} `json:"partitiontable"`
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		t.Fatal(err)
	}
	var parts []part.Partition
	for _, p := range doc.Table.Partitions {
		n, err := strconv.Atoi(strings.TrimPrefix(p.Node, path))
		if err != nil {
			t.Fatal(err)
		}
		typ := p.Type
		if doc.Table.Label == "dos" {
			v, err := strconv.ParseUint(p.Type, 16, 8)
			if err != nil {
				t.Fatal(err)
			}
			typ = fmt.Sprintf("0x%02x", v)
		}
		parts = append(parts, part.Partition{Number: n, Start: p.Start * doc.Table.SectorSize, Size: p.Size * doc.Table.SectorSize, Type: typ, Name: p.Name})
	}
	return parts
}

func readParts(t testing.TB, b []byte) ([]part.Partition, *nodetest.Image, error) {
	t.Helper()
	m := nodetest.NewImage(b)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	parts, err := part.Read(ctx, m, m.Size(), node.Options{})
	return parts, m, err
}

const (
	esp   = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
	linux = "0FC63DAF-8483-4772-8E79-3D69D8477DE4"
)

const gptScript = "label: gpt\nfirst-lba: 34\n" +
	"start=34, size=40, type=" + esp + ", name=\"EFI\"\n" +
	"start=80, size=100, type=" + linux + ", name=\"root ü\"\n"

const dosScript = "label: dos\n" +
	"start=1, size=20, type=83\n" +
	"start=21, size=20, type=c\n" +
	"start=41, size=200, type=5\n" +
	"start=43, size=20, type=83\n" +
	"start=70, size=20, type=82\n"

func TestTables(t *testing.T) {
	fixture.RequireTools(t, "sfdisk")
	tests := []struct {
		name   string
		size   int64
		script string
		want   []part.Partition
	}{
		{"gpt", 128 << 10, gptScript, []part.Partition{
			{1, 34 * 512, 40 * 512, esp, "EFI"},
			{2, 80 * 512, 100 * 512, linux, "root ü"},
		}},
		{"gpt 4096", 1 << 20, "label: gpt\nsector-size: 4096\nfirst-lba: 6\nstart=6, size=100, type=" + esp + ", name=\"EFI\"\n", []part.Partition{
			{1, 6 * 4096, 100 * 4096, esp, "EFI"},
		}},
		{"dos", 128 << 10, dosScript, []part.Partition{
			{1, 512, 20 * 512, "0x83", ""},
			{2, 21 * 512, 20 * 512, "0x0c", ""},
			{3, 41 * 512, 200 * 512, "0x05", ""},
			{5, 43 * 512, 20 * 512, "0x83", ""},
			{6, 70 * 512, 20 * 512, "0x82", ""},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "disk")
			sfdisk(t, path, tt.size, tt.script)
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			got, m, err := readParts(t, b)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v\nwant %+v", got, tt.want)
			}
			if tt.name != "gpt 4096" { // sfdisk --json on a file assumes 512-byte sectors
				if ref := sfdiskList(t, path); !reflect.DeepEqual(got, ref) {
					t.Errorf("got %+v\nsfdisk says %+v", got, ref)
				}
			}
			for _, p := range got {
				if p.Extended() != (p.Type == "0x05") {
					t.Errorf("partition %d: Extended() = %v", p.Number, p.Extended())
				}
			}
			t.Logf("read %d bytes of a %d-byte disk", m.BytesRead(), len(b))
		})
	}
}

// TestFilesystems puts a FAT and an ext4 image into a GPT disk and finds
// them at the offsets Read gives.
func TestFilesystems(t *testing.T) {
	fixture.RequireTools(t, "sfdisk", "mkfs.vfat", "mkfs.ext4")
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	if err := fixture.WriteTree(src, map[string][]byte{"hello": []byte("hi\n")}); err != nil {
		t.Fatal(err)
	}
	fat := filepath.Join(dir, "fat")
	if out, err := exec.Command("mkfs.vfat", "-F", "16", "-s", "1", "-C", fat, "4096").CombinedOutput(); err != nil {
		t.Fatalf("mkfs.vfat: %v: %s", err, out)
	}
	ext := filepath.Join(dir, "ext4")
	if err := fixture.MakeExt4(t.Context(), src, ext, 4<<20); err != nil {
		t.Fatal(err)
	}
	disk := filepath.Join(dir, "disk")
	sfdisk(t, disk, 12<<20, "label: gpt\nstart=2048, size=8192, type="+esp+", name=\"EFI\"\nstart=10240, size=8192, type="+linux+"\n")
	for i, img := range []string{fat, ext} {
		seek := 2048 + 8192*i
		if out, err := exec.Command("dd", "if="+img, "of="+disk, "bs=512", "seek="+strconv.Itoa(seek), "conv=notrunc", "status=none").CombinedOutput(); err != nil {
			t.Fatalf("dd: %v: %s", err, out)
		}
	}
	b, err := os.ReadFile(disk)
	if err != nil {
		t.Fatal(err)
	}
	parts, m, err := readParts(t, b)
	if err != nil {
		t.Fatal(err)
	}
	if len(parts) != 2 {
		t.Fatalf("got %+v", parts)
	}
	if s := b[parts[0].Start+54 : parts[0].Start+59]; string(s) != "FAT16" {
		t.Errorf("partition 1 at %d: no FAT16 boot sector: %q", parts[0].Start, s)
	}
	if magic := binary.LittleEndian.Uint16(b[parts[1].Start+1024+56:]); magic != 0xef53 {
		t.Errorf("partition 2 at %d: no ext4 superblock: %#x", parts[1].Start, magic)
	}
	if parts[1].Name != "" || parts[0].Name != "EFI" {
		t.Errorf("names %q %q", parts[0].Name, parts[1].Name)
	}
	t.Logf("read %d bytes of a %d-byte disk", m.BytesRead(), len(b))
	if m.BytesRead() > 32<<10 {
		t.Errorf("read %d bytes for the table", m.BytesRead())
	}
}

// gptDisk is a small GPT disk built by sfdisk.
func gptDisk(t testing.TB) []byte {
	path := filepath.Join(t.TempDir(), "disk")
	sfdisk(t, path, 128<<10, gptScript)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func dosDisk(t testing.TB) []byte {
	path := filepath.Join(t.TempDir(), "disk")
	sfdisk(t, path, 128<<10, dosScript)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestBroken(t *testing.T) {
	fixture.RequireTools(t, "sfdisk")
	gpt := gptDisk(t)
	dos := dosDisk(t)
	want, _, err := readParts(t, gpt)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		disk     []byte
		edit     func(b []byte) []byte
		fallback bool // the same partitions as the intact disk
		empty    bool // no table at all
	}{
		{"entries CRC, backup intact", gpt, func(b []byte) []byte { b[1024+56] ^= 1; return b }, true, false},
		{"primary header CRC", gpt, func(b []byte) []byte { b[512+40] ^= 1; return b }, true, false},
		{"primary signature", gpt, func(b []byte) []byte { b[512] = 'X'; return b }, true, false},
		{"both headers", gpt, func(b []byte) []byte { b[512] = 'X'; b[len(b)-512] = 'X'; return b }, false, false},
		{"truncated", gpt, func(b []byte) []byte { return b[:8<<10] }, false, false},
		{"entry count", gpt, func(b []byte) []byte {
			for _, h := range []int{512, len(b) - 512} {
				binary.LittleEndian.PutUint32(b[h+80:], 1<<30)
				fixHeaderCRC(b[h:])
			}
			return b
		}, false, false},
		{"no signature", dos, func(b []byte) []byte { b[510] = 0; return b }, false, true},
		{"zeros", make([]byte, 4096), func(b []byte) []byte { return b }, false, true},
		{"EBR loop", dos, func(b []byte) []byte {
			// the second EBR's link points back at the first
			ebr2 := 41*512 + 446 + 16
			next := binary.LittleEndian.Uint32(b[ebr2+8:])
			binary.LittleEndian.PutUint32(b[int(41+next)*512+446+16+8:], 0)
			b[int(41+next)*512+446+16+4] = 5
			binary.LittleEndian.PutUint32(b[int(41+next)*512+446+16+12:], 10)
			return b
		}, false, false},
		{"EBR outside", dos, func(b []byte) []byte {
			binary.LittleEndian.PutUint32(b[41*512+446+16+8:], 1<<20)
			return b
		}, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _, err := readParts(t, tt.edit(bytes.Clone(tt.disk)))
			switch {
			case tt.fallback:
				if err != nil || !reflect.DeepEqual(got, want) {
					t.Errorf("got %+v, %v; want the backup's %+v", got, err, want)
				}
			case tt.empty:
				if err != nil || got != nil {
					t.Errorf("got %+v, %v; want no table", got, err)
				}
			default:
				t.Log(err)
				if !errors.Is(err, node.ErrCorrupt) {
					t.Errorf("got %+v, %v; want ErrCorrupt", got, err)
				}
			}
		})
	}
}

// fixHeaderCRC recomputes the CRC of the 92-byte GPT header h.
func fixHeaderCRC(h []byte) {
	clear(h[16:20])
	binary.LittleEndian.PutUint32(h[16:], crc32.ChecksumIEEE(h[:92]))
}

// readErr is a disk whose reads fail, as a network would.
type readErr struct{}

var errNet = errors.New("network down")

func (readErr) ReadAt(context.Context, []byte, int64) (int, error) { return 0, errNet }

func TestReadError(t *testing.T) {
	_, err := part.Read(context.Background(), readErr{}, 1<<20, node.Options{})
	if !errors.Is(err, errNet) || errors.Is(err, node.ErrCorrupt) {
		t.Errorf("got %v, want the reader's error and not ErrCorrupt", err)
	}
}

func FuzzPartitions(f *testing.F) {
	if _, err := exec.LookPath("sfdisk"); err == nil {
		dir := f.TempDir()
		for i, script := range []string{
			"label: gpt\nfirst-lba: 34\nstart=34, size=4, type=" + esp + ", name=\"EFI\"\nstart=40, size=8\n",
			"label: dos\nstart=1, size=20, type=83\nstart=21, size=20, type=c\nstart=41, size=50, type=5\nstart=43, size=10, type=83\nstart=70, size=10, type=82\n",
		} {
			path := filepath.Join(dir, strconv.Itoa(i))
			sfdisk(f, path, 48<<10, script)
			b, err := os.ReadFile(path)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
	// A small MBR built here, with an extended partition.
	b := make([]byte, 8<<10)
	b[510], b[511] = 0x55, 0xaa
	b[446+4], b[446+8], b[446+12] = 5, 1, 10
	b[512+510], b[512+511] = 0x55, 0xaa
	b[512+446+4], b[512+446+8], b[512+446+12] = 0x83, 1, 2
	b[512+446+16+4], b[512+446+16+8], b[512+446+16+12] = 5, 3, 3
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		parts, _, err := readParts(t, b)
		if err != nil {
			return
		}
		for _, p := range parts {
			if p.Start < 0 || p.Size < 0 || p.Start+p.Size > int64(len(b)) {
				t.Fatalf("partition %+v outside the %d-byte disk", p, len(b))
			}
		}
	})
}
