package faulty

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
)

// Status answers with code and the header pairs given ("Retry-After", "1"),
// and a registry-style JSON error body.
func Status(code int, header ...string) Fault {
	return Fault{Name: fmt.Sprintf("status %d", code), Serve: func(p *Proxy, w http.ResponseWriter, r *http.Request) int {
		for i := 0; i+1 < len(header); i += 2 {
			w.Header().Set(header[i], header[i+1])
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_, _ = fmt.Fprintf(w, `{"errors":[{"code":"FAULTY","message":"injected %d"}]}`, code)
		return code
	}}
}

// Reset resets the connection (TCP RST) without answering.
func Reset() Fault {
	return Fault{Name: "reset", Serve: func(p *Proxy, w http.ResponseWriter, r *http.Request) int {
		closeConn(w, true)
		return 0
	}}
}

// closeConn takes the connection from the server and closes it, with a
// TCP RST when rst is set (else a FIN).
func closeConn(w http.ResponseWriter, rst bool) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	if tc, ok := conn.(*net.TCPConn); ok && rst {
		_ = tc.SetLinger(0)
	}
	_ = conn.Close()
}

// CutBody forwards the registry's answer with its Content-Length but stops
// after n body bytes and closes the connection.
func CutBody(n int64) Fault {
	return Fault{Name: "cut body", Serve: func(p *Proxy, w http.ResponseWriter, r *http.Request) int {
		resp, ok := forwardHeader(p, w, r, r.Header.Get("Range"))
		if !ok {
			return http.StatusBadGateway
		}
		defer resp.Body.Close()
		_, _ = copyFlush(w, io.LimitReader(resp.Body, n))
		closeConn(w, false)
		return resp.StatusCode
	}}
}

// ShortChunked forwards the registry's answer without Content-Length
// (chunked) and ends it cleanly after n body bytes.
func ShortChunked(n int64) Fault {
	return Fault{Name: "short chunked body", Serve: func(p *Proxy, w http.ResponseWriter, r *http.Request) int {
		resp, ok := forwardHeader(p, w, r, r.Header.Get("Range"), "Content-Length")
		if !ok {
			return http.StatusBadGateway
		}
		defer resp.Body.Close()
		_, _ = copyFlush(w, io.LimitReader(resp.Body, n))
		return resp.StatusCode
	}}
}

// Stall forwards the headers and n body bytes of the registry's answer,
// then sends nothing more until the client hangs up (or the proxy closes).
func Stall(n int64) Fault {
	return Fault{Name: "stall body", Serve: func(p *Proxy, w http.ResponseWriter, r *http.Request) int {
		resp, ok := forwardHeader(p, w, r, r.Header.Get("Range"))
		if !ok {
			return http.StatusBadGateway
		}
		defer resp.Body.Close()
		_, _ = copyFlush(w, io.LimitReader(resp.Body, n))
		select {
		case <-r.Context().Done():
		case <-p.release:
		}
		return resp.StatusCode
	}}
}

// StallHeaders sends nothing at all until the client hangs up.
func StallHeaders() Fault {
	return Fault{Name: "stall headers", Serve: func(p *Proxy, w http.ResponseWriter, r *http.Request) int {
		select {
		case <-r.Context().Done():
		case <-p.release:
		}
		return 0
	}}
}

// ShiftRange asks the registry for the requested range moved by delta
// bytes and forwards that answer as is: a 206 whose Content-Range honestly
// names bytes other than those asked for.
func ShiftRange(delta int64) Fault {
	return Fault{Name: fmt.Sprintf("range shifted by %d", delta), Serve: func(p *Proxy, w http.ResponseWriter, r *http.Request) int {
		first, last, ok := parseRange(r.Header.Get("Range"))
		if !ok || first+delta < 0 {
			w.WriteHeader(http.StatusBadRequest)
			return http.StatusBadRequest
		}
		resp, ok := forwardHeader(p, w, r, fmt.Sprintf("bytes=%d-%d", first+delta, last+delta))
		if !ok {
			return http.StatusBadGateway
		}
		defer resp.Body.Close()
		_, _ = copyFlush(w, resp.Body)
		return resp.StatusCode
	}}
}

// LieContentRange forwards the right bytes under a Content-Range header
// that names the range moved by one byte.
func LieContentRange() Fault {
	return Fault{Name: "lying Content-Range", Serve: func(p *Proxy, w http.ResponseWriter, r *http.Request) int {
		resp, err := p.Upstream(r, r.Header.Get("Range"))
		if err != nil {
			w.WriteHeader(http.StatusBadGateway)
			return http.StatusBadGateway
		}
		defer resp.Body.Close()
		copyHeader(w.Header(), resp.Header)
		var first, last, total int64
		if _, err := fmt.Sscanf(resp.Header.Get("Content-Range"), "bytes %d-%d/%d", &first, &last, &total); err == nil {
			w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", first+1, last+1, total+1))
		}
		w.WriteHeader(resp.StatusCode)
		_, _ = copyFlush(w, resp.Body)
		return resp.StatusCode
	}}
}

// LongBody forwards the registry's answer followed by extra more bytes.
// With chunked, the answer has no Content-Length; otherwise its
// Content-Length counts the extra bytes (Content-Range is unchanged).
func LongBody(extra int, chunked bool) Fault {
	name := "long body"
	if chunked {
		name += " (chunked)"
	}
	return Fault{Name: name, Serve: func(p *Proxy, w http.ResponseWriter, r *http.Request) int {
		resp, err := p.Upstream(r, r.Header.Get("Range"))
		if err != nil {
			w.WriteHeader(http.StatusBadGateway)
			return http.StatusBadGateway
		}
		defer resp.Body.Close()
		copyHeader(w.Header(), resp.Header)
		w.Header().Del("Content-Length")
		if !chunked && resp.ContentLength >= 0 {
			w.Header().Set("Content-Length", strconv.FormatInt(resp.ContentLength+int64(extra), 10))
		}
		w.WriteHeader(resp.StatusCode)
		_, _ = copyFlush(w, resp.Body)
		_, _ = w.Write([]byte(strings.Repeat("X", extra)))
		return resp.StatusCode
	}}
}

// IgnoreRange forwards the request without its Range header: the registry
// answers 200 with the whole blob, which is streamed.
func IgnoreRange() Fault {
	return Fault{Name: "Range ignored", Serve: func(p *Proxy, w http.ResponseWriter, r *http.Request) int {
		resp, ok := forwardHeader(p, w, r, "")
		if !ok {
			return http.StatusBadGateway
		}
		defer resp.Body.Close()
		_, _ = copyFlush(w, resp.Body)
		return resp.StatusCode
	}}
}

// Redirect answers 307 Temporary Redirect to the URL location returns for
// the request.
func Redirect(location func(r *http.Request) string) Fault {
	return Fault{Name: "redirect", Serve: func(p *Proxy, w http.ResponseWriter, r *http.Request) int {
		w.Header().Set("Location", location(r))
		w.WriteHeader(http.StatusTemporaryRedirect)
		return http.StatusTemporaryRedirect
	}}
}

// forwardHeader gets the registry's answer for r with Range rng and sends
// its status and headers (minus the ones named in drop).
func forwardHeader(p *Proxy, w http.ResponseWriter, r *http.Request, rng string, drop ...string) (*http.Response, bool) {
	resp, err := p.Upstream(r, rng)
	if err != nil {
		w.WriteHeader(http.StatusBadGateway)
		return nil, false
	}
	copyHeader(w.Header(), resp.Header)
	for _, h := range drop {
		w.Header().Del(h)
	}
	w.WriteHeader(resp.StatusCode)
	return resp, true
}

func copyHeader(dst, src http.Header) {
	for k, v := range src {
		dst[k] = append([]string(nil), v...)
	}
}

// copyFlush copies r to w, flushing after every write.
func copyFlush(w http.ResponseWriter, r io.Reader) (int64, error) {
	rc := http.NewResponseController(w)
	buf := make([]byte, 32<<10)
	var total int64
	for {
		n, err := r.Read(buf)
		if n > 0 {
			m, werr := w.Write(buf[:n])
			total += int64(m)
			if werr != nil {
				return total, werr
			}
			_ = rc.Flush()
		}
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

// parseRange parses "bytes=first-last".
func parseRange(v string) (first, last int64, ok bool) {
	if _, err := fmt.Sscanf(v, "bytes=%d-%d", &first, &last); err != nil || last < first {
		return 0, 0, false
	}
	return first, last, true
}
