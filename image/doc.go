// Package image is the OS-image model: which media types osimagefs accepts,
// which role each layer plays (disk, kernel, initramfs, ...), and how the
// fetched index, manifests and configs become the read-only tree that
// `osimagefs mount` shows and `osimagefs inspect` prints.
//
// It does no I/O. The blobstore package fetches the documents and hands them
// to Layout as a Source; the fs package serves the resulting Tree. Keeping
// the rules here, on plain bytes, lets them be tested as tables and fuzzed.
//
// Tree rules (also in the README):
//
//   - Layer files live in <arch>/<variant>/. The architecture is the index
//     entry's platform.architecture, else the manifest's "architecture"
//     annotation, else "unknown". The variant is the manifest's "variant"
//     annotation, else "default".
//   - A layer with a known role gets the role's file name (disk.img, kernel,
//     initramfs, root.squashfs, cmdline, uki.efi, image.iso). A layer of an
//     unknown type is shown under its org.opencontainers.image.title when that
//     is a safe file name, else as layer-<first 12 hex digits of its digest>.
//   - When there is no cmdline layer and the config holds a non-empty
//     "commandLine", the cmdline file holds that string.
//   - manifest.json and config.json are the documents byte for byte;
//     index.json at the top is the index byte for byte (only for an index).
//   - Names hold only PrintableRune runes (unicode.IsPrint: no control or
//     format character such as a bidi override or a zero-width mark, no
//     space but U+0020), never '/' or '\', and are never "." or "..";
//     inspect escapes by the same rule. An unsafe title gives way to
//     layer-<hex>; in an architecture or variant, each refused rune
//     becomes '_'. A name already taken in its directory gets "-2", "-3", ...
//     inserted before its extension (disk-2.img); a directory
//     <arch>/<variant> already taken gets the same suffix on the variant
//     (virtualization-2), in index order.
//   - Role names win: in a directory, names are claimed by the documents
//     first, then by the layers with a role in manifest order, then by the
//     config's cmdline, and last by the layers of unknown type in manifest
//     order. An unknown layer titled "kernel" is kernel-2 wherever it
//     stands; two kernel layers are kernel and kernel-2 in manifest order.
//   - Index entries that are not OS images (signatures, attestations,
//     container images: no OS config type and no layer with a known role) are
//     skipped and reported as warnings.
package image
