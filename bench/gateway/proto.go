package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"

	"github.com/coexist-dev/coexist/api"
)

// protoForwarder is NOT the gateway: it is a yardstick for the --cpuprofile
// run, the least a Go HTTP/1.1 proxy does per call on this machine. Each
// client connection gets its own goroutine and its own pinned keep-alive
// connection to the one upstream; a call is read, its headers passed on
// with X-Forwarded-For added, the answer's headers passed back with
// Coexist-Served-By added, and the body copied by Content-Length or chunk by
// chunk, all in that one goroutine, with next to no allocation. It skips everything a real gateway must do (routing,
// in-flight counts, metrics, hop-by-hop headers beyond Connection, request
// bodies other than Content-Length, errors as JSON): it shows what an
// engine of this shape costs, not what the gateway could be.
type protoForwarder struct {
	ln       net.Listener
	upstream string
	servedBy []byte
	wg       sync.WaitGroup
	mu       sync.Mutex
	conns    map[net.Conn]struct{}
}

func startProtoForwarder(ln net.Listener, upstream, servedBy string) *protoForwarder {
	f := &protoForwarder{ln: ln, upstream: upstream, servedBy: []byte(api.HeaderServedBy + ": " + servedBy + "\r\n"),
		conns: map[net.Conn]struct{}{}}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			f.mu.Lock()
			f.conns[c] = struct{}{}
			f.mu.Unlock()
			f.wg.Add(1)
			go func() {
				defer f.wg.Done()
				f.serve(c)
				f.mu.Lock()
				delete(f.conns, c)
				f.mu.Unlock()
			}()
		}
	}()
	return f
}

func (f *protoForwarder) close() {
	f.ln.Close()
	f.mu.Lock()
	for c := range f.conns {
		c.Close()
	}
	f.mu.Unlock()
	f.wg.Wait()
}

var crlf = []byte("\r\n")

func (f *protoForwarder) serve(c net.Conn) {
	defer c.Close()
	br := bufio.NewReaderSize(c, 4096)
	bw := bufio.NewWriterSize(c, 4096)
	var up net.Conn
	var ubr *bufio.Reader
	var ubw *bufio.Writer
	defer func() {
		if up != nil {
			up.Close()
		}
	}()
	xff := []byte("X-Forwarded-For: " + hostOnly(c.RemoteAddr().String()) + "\r\n")
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return
		}
		if up == nil {
			if up, err = net.Dial("tcp", f.upstream); err != nil {
				io.WriteString(c, "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
				return
			}
			ubr = bufio.NewReaderSize(up, 4096)
			ubw = bufio.NewWriterSize(up, 4096)
		}
		ubw.Write(line)
		reqLen := 0
		for {
			line, err = br.ReadSlice('\n')
			if err != nil {
				return
			}
			if len(line) <= 2 {
				break
			}
			k, v, _ := bytes.Cut(line, []byte(":"))
			switch {
			case bytes.EqualFold(k, hdrConnection):
				continue
			case bytes.EqualFold(k, hdrContentLength):
				reqLen, _ = strconv.Atoi(string(bytes.TrimSpace(v)))
			case bytes.EqualFold(k, hdrTransferEncoding):
				io.WriteString(c, "HTTP/1.1 501 Not Implemented\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
				return
			}
			ubw.Write(line)
		}
		ubw.Write(xff)
		ubw.Write(crlf)
		if reqLen > 0 {
			if _, err := io.CopyN(ubw, br, int64(reqLen)); err != nil {
				return
			}
		}
		if err := ubw.Flush(); err != nil {
			return
		}
		if err := f.copyAnswer(bw, ubr); err != nil {
			return
		}
		if err := bw.Flush(); err != nil {
			return
		}
	}
}

// copyAnswer copies one answer from the upstream to the caller, adding
// Coexist-Served-By.
func (f *protoForwarder) copyAnswer(bw *bufio.Writer, ubr *bufio.Reader) error {
	line, err := ubr.ReadSlice('\n')
	if err != nil {
		return err
	}
	bw.Write(line)
	length, chunked := -1, false
	for {
		line, err = ubr.ReadSlice('\n')
		if err != nil {
			return err
		}
		if len(line) <= 2 {
			break
		}
		k, v, _ := bytes.Cut(line, []byte(":"))
		switch {
		case bytes.EqualFold(k, hdrConnection):
			continue
		case bytes.EqualFold(k, hdrContentLength):
			length, _ = strconv.Atoi(string(bytes.TrimSpace(v)))
		case bytes.EqualFold(k, hdrTransferEncoding):
			chunked = true
		}
		bw.Write(line)
	}
	bw.Write(f.servedBy)
	bw.Write(crlf)
	switch {
	case chunked:
		for {
			line, err = ubr.ReadSlice('\n')
			if err != nil {
				return err
			}
			bw.Write(line)
			s, _, _ := bytes.Cut(bytes.TrimSpace(line), []byte(";"))
			n, err := strconv.ParseInt(string(s), 16, 64)
			if err != nil {
				return fmt.Errorf("bad chunk size %q", line)
			}
			if n == 0 {
				for {
					line, err = ubr.ReadSlice('\n')
					if err != nil {
						return err
					}
					bw.Write(line)
					if len(line) <= 2 {
						return nil
					}
				}
			}
			if _, err := io.CopyN(bw, ubr, n+2); err != nil {
				return err
			}
		}
	case length >= 0:
		_, err = io.CopyN(bw, ubr, int64(length))
		return err
	default:
		return errors.New("answer without a length")
	}
}

func hostOnly(addr string) string {
	h, _, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	return h
}
