package driver

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// Log size cap.
//
// A container writes its stdout and stderr straight into files under its
// directory: the driver hands the child the file descriptors, not pipes, so
// that the child keeps running (and writing) when the agent dies. The driver
// therefore never sees the bytes go by and cannot cap them on the way in.
// Instead it checks each file's size every LogCheckInterval and, when a file
// has grown past LogMaxBytes, cuts it down to about its last half:
//
//   - The child's descriptors are opened with O_APPEND, so each of its writes
//     goes to the end of the file as it is at that moment, even after the file
//     shrinks: there is no hole and no stale offset to fix up.
//   - Where the file system supports it (ext4, xfs), the head of the file is
//     removed with fallocate(FALLOC_FL_COLLAPSE_RANGE), in whole blocks. The
//     kernel does this under the inode lock, atomically with respect to the
//     child's appends, so nothing is lost; the file then starts mid-line.
//   - Elsewhere the last half (from a line start) is copied to the head of
//     the file, then whatever the child appended meanwhile, and the file is
//     truncated after that. A write the child makes in the instant between
//     the last size check and the truncation is lost; nothing is reordered,
//     and a reader never sees the file empty.
//
// Between two checks a fast writer can take a file past the cap by what it
// writes in one interval; the next check brings it back. A final check runs
// when the container exits, and checks resume for a re-adopted container.

// rotateLog enforces max on the file at path, as described above. It reports
// whether the file was cut. A missing file is not an error.
func rotateLog(path string, max int64, collapse bool) (bool, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("open log: %w", err)
	}
	defer f.Close()

	fi, err := f.Stat()
	if err != nil {
		return false, fmt.Errorf("stat log: %w", err)
	}
	if fi.Size() <= max {
		return false, nil
	}
	keep := max / 2
	if collapse && collapseHead(f, fi.Size(), keep) {
		return true, nil
	}
	return copyTail(f, fi.Size(), keep)
}

// collapseHead removes whole blocks from the head of f, of the given size,
// so that at most keep+blocksize bytes remain. It returns false when the file
// system cannot do it, so that the caller falls back to copyTail.
func collapseHead(f *os.File, size, keep int64) bool {
	var sfs unix.Statfs_t
	if err := unix.Fstatfs(int(f.Fd()), &sfs); err != nil {
		return false
	}
	blk := int64(sfs.Bsize) // int32 on some platforms
	if blk <= 0 || blk > keep {
		return false
	}
	n := (size - keep) / blk * blk
	if n <= 0 {
		return false
	}
	// EOPNOTSUPP (tmpfs, btrfs...) or EINVAL (alignment): copy instead.
	return unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_COLLAPSE_RANGE, 0, n) == nil
}

// copyTail keeps the last keep bytes of f (from a line start), where f had
// the given size: it copies them to the head of the file, then copies there
// too whatever the child appended meanwhile, and truncates the file after
// them. The file never looks empty to a reader, and a write is lost only if
// it lands between the last size check and the truncation.
func copyTail(f *os.File, size, keep int64) (bool, error) {
	buf := make([]byte, keep)
	n, err := f.ReadAt(buf, size-keep)
	if err != nil && !errors.Is(err, io.EOF) {
		return false, fmt.Errorf("read log: %w", err)
	}
	buf = buf[:n]
	if i := bytes.IndexByte(buf, '\n'); i >= 0 && i+1 < len(buf) {
		buf = buf[i+1:]
	}
	if _, err := f.WriteAt(buf, 0); err != nil {
		return false, fmt.Errorf("write log: %w", err)
	}
	end, src := int64(len(buf)), size // new end of the kept data; old offset not yet copied
	for range 8 {
		fi, err := f.Stat()
		if err != nil {
			return false, fmt.Errorf("stat log: %w", err)
		}
		if fi.Size() <= src {
			break
		}
		// The child appended [src, size) meanwhile. end < src always, so
		// these writes stay inside the file and never race its appends.
		more := make([]byte, fi.Size()-src)
		m, err := f.ReadAt(more, src)
		if err != nil && !errors.Is(err, io.EOF) {
			return false, fmt.Errorf("read log: %w", err)
		}
		if _, err := f.WriteAt(more[:m], end); err != nil {
			return false, fmt.Errorf("write log: %w", err)
		}
		end += int64(m)
		src += int64(m)
	}
	if err := f.Truncate(end); err != nil {
		return false, fmt.Errorf("truncate log: %w", err)
	}
	return true, nil
}

// tailMaxBytes bounds how much of a file tailFile reads looking for lines.
const tailMaxBytes = 256 << 10

// tailChunk is how much tailFile reads at a time, from the end backwards.
var tailChunk int64 = 8 << 10

// tailFile returns the last n lines of the file at path, reading backwards
// from its end only as far as needed (and at most tailMaxBytes). A missing
// file has no lines.
func tailFile(path string, n int) ([]string, error) {
	if n <= 0 {
		return nil, nil
	}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("open log: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("stat log: %w", err)
	}
	off := fi.Size()
	var buf []byte
	newlines := 0 // in buf, not counting a final newline at the end of the file
	for off > 0 && len(buf) < tailMaxBytes && newlines < n {
		c := min(tailChunk, off)
		off -= c
		chunk := make([]byte, c)
		if _, err := f.ReadAt(chunk, off); err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("read log: %w", err)
		}
		if len(buf) == 0 {
			newlines += bytes.Count(bytes.TrimSuffix(chunk, []byte("\n")), []byte("\n"))
		} else {
			newlines += bytes.Count(chunk, []byte("\n"))
		}
		buf = append(chunk, buf...)
	}
	text := strings.TrimSuffix(strings.ToValidUTF8(string(buf), "\uFFFD"), "\n")
	if text == "" {
		return nil, nil
	}
	lines := strings.Split(text, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return lines, nil
}
