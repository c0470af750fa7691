// spdy_client: a client of berthd's stream server built on github.com/docker/spdystream
// (Debian's golang-github-docker-spdystream-dev, the SPDY library under client-go's
// remotecommand and port-forward), so that the server is tested against a real SPDY
// implementation and not only against the project's own codec. It speaks the kubelet's
// protocols as client-go does: stream creation in client-go's order, stdin half-closed at
// EOF, the v4 status read from the error stream after stdout and stderr ended. An https
// URL is dialled with TLS without verifying the certificate (the kubelet's is self-signed).
//
//	spdy_client exec URL [-stdin] [-stdout] [-stderr] [-tty] [-resize WxH] [-protocol P] [-status FILE]
//	    stdin from our stdin; stdout/stderr to ours; the error stream's payload to FILE
//	    (else to stderr, prefixed "status: "); exit code: 0 ok, 1 failure status, 2 protocol
//	    or connection error.
//	spdy_client portforward URL PORT [REQUESTS]
//	    REQUESTS connections one after the other (default 1): each sends our stdin's bytes,
//	    half-closes, prints what comes back; then "error stream: <text>" if it had any.
package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/docker/spdystream"
)

func die(code int, format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "spdy_client: "+format+"\n", args...)
	os.Exit(code)
}

// upgrade dials the URL and upgrades to SPDY/3.1 offering protocols; returns the
// connection and the protocol the server chose.
func upgrade(rawURL string, protocols []string) (*spdystream.Connection, string) {
	u, err := url.Parse(rawURL)
	if err != nil {
		die(2, "url: %v", err)
	}
	var conn net.Conn
	dialer := &net.Dialer{Timeout: 10 * time.Second}
	if u.Scheme == "https" { // e.g. the kubelet's server, with its self-signed certificate
		conn, err = tls.DialWithDialer(dialer, "tcp", u.Host, &tls.Config{InsecureSkipVerify: true})
	} else {
		conn, err = dialer.Dial("tcp", u.Host)
	}
	if err != nil {
		die(2, "dial: %v", err)
	}
	var req bytes.Buffer
	fmt.Fprintf(&req, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Length: 0\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n", u.RequestURI(), u.Host)
	for _, p := range protocols {
		fmt.Fprintf(&req, "X-Stream-Protocol-Version: %s\r\n", p)
	}
	req.WriteString("\r\n")
	if _, err := conn.Write(req.Bytes()); err != nil {
		die(2, "write request: %v", err)
	}
	// The server sends nothing after its 101 until we send a frame: reading the response
	// through a buffer loses no SPDY bytes (client-go does the same).
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		die(2, "read response: %v", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		die(2, "upgrade refused: %d %s", resp.StatusCode, strings.TrimSpace(string(body)))
	}
	sc, err := spdystream.NewConnection(conn, false)
	if err != nil {
		die(2, "spdy: %v", err)
	}
	go sc.Serve(spdystream.NoOpStreamHandler)
	return sc, resp.Header.Get("X-Stream-Protocol-Version")
}

func create(sc *spdystream.Connection, headers http.Header) *spdystream.Stream {
	s, err := sc.CreateStream(headers, nil, false)
	if err != nil {
		die(2, "create stream %v: %v", headers, err)
	}
	if err := s.WaitTimeout(30 * time.Second); err != nil {
		die(2, "stream %v: no reply: %v", headers, err)
	}
	return s
}

func execCmd(args []string) {
	fs := flag.NewFlagSet("exec", flag.ExitOnError)
	stdin := fs.Bool("stdin", false, "send our stdin")
	stdout := fs.Bool("stdout", true, "want stdout")
	stderr := fs.Bool("stderr", true, "want stderr")
	tty := fs.Bool("tty", false, "tty (no stderr stream)")
	resize := fs.String("resize", "", "WxH sent on the resize stream")
	statusFile := fs.String("status", "", "write the error stream's payload here (else: stderr)")
	protocol := fs.String("protocol", "v4.channel.k8s.io,v3.channel.k8s.io,v2.channel.k8s.io,channel.k8s.io", "offered")
	fs.Parse(args[1:])
	sc, chosen := upgrade(args[0], strings.Split(*protocol, ","))
	defer sc.Close()
	version := 1
	if strings.HasPrefix(chosen, "v") {
		version, _ = strconv.Atoi(chosen[1:2])
	}
	errStream := create(sc, http.Header{"Streamtype": {"error"}})
	var in, out, errOut, rs *spdystream.Stream
	if *stdin {
		in = create(sc, http.Header{"Streamtype": {"stdin"}})
	}
	if *stdout {
		out = create(sc, http.Header{"Streamtype": {"stdout"}})
	}
	if *stderr && !*tty {
		errOut = create(sc, http.Header{"Streamtype": {"stderr"}})
	}
	if *tty && version >= 3 {
		rs = create(sc, http.Header{"Streamtype": {"resize"}})
		if *resize != "" {
			var w, h uint16
			fmt.Sscanf(*resize, "%dx%d", &w, &h)
			json.NewEncoder(rs).Encode(map[string]uint16{"Width": w, "Height": h})
		}
	}
	if in != nil {
		go func() {
			io.Copy(in, os.Stdin)
			in.Close() // half-close: the process's stdin ends
		}()
	}
	var wg sync.WaitGroup
	for _, p := range []struct {
		s *spdystream.Stream
		w io.Writer
	}{{out, os.Stdout}, {errOut, os.Stderr}} {
		if p.s == nil {
			continue
		}
		wg.Add(1)
		go func(s *spdystream.Stream, w io.Writer) {
			defer wg.Done()
			io.Copy(w, s)
		}(p.s, p.w)
	}
	wg.Wait()
	status, _ := io.ReadAll(errStream)
	if *statusFile != "" {
		os.WriteFile(*statusFile, status, 0600)
	} else {
		fmt.Fprintf(os.Stderr, "status: %s\n", status)
	}
	if version >= 4 {
		var st struct{ Status string }
		if err := json.Unmarshal(status, &st); err != nil {
			die(2, "status %q: %v", status, err)
		}
		if st.Status != "Success" {
			os.Exit(1)
		}
	} else if len(status) > 0 {
		os.Exit(1)
	}
}

func portForward(args []string) {
	if len(args) < 2 {
		die(2, "portforward URL PORT [REQUESTS]")
	}
	requests := 1
	if len(args) > 2 {
		requests, _ = strconv.Atoi(args[2])
	}
	payload, _ := io.ReadAll(os.Stdin)
	sc, _ := upgrade(args[0], []string{"portforward.k8s.io"})
	defer sc.Close()
	for i := 0; i < requests; i++ {
		id := strconv.Itoa(i)
		errStream := create(sc, http.Header{"Streamtype": {"error"}, "Port": {args[1]}, "Requestid": {id}})
		errStream.Close() // as client-go: the error stream is the server's to write
		data := create(sc, http.Header{"Streamtype": {"data"}, "Port": {args[1]}, "Requestid": {id}})
		data.Write(payload)
		data.Close()
		reply, _ := io.ReadAll(data)
		os.Stdout.Write(reply)
		msg, _ := io.ReadAll(errStream)
		if len(msg) > 0 {
			fmt.Printf("error stream: %s\n", msg)
		}
	}
}

func main() {
	if len(os.Args) < 3 {
		die(2, "usage: spdy_client exec|portforward URL ...")
	}
	switch os.Args[1] {
	case "exec":
		execCmd(os.Args[2:])
	case "portforward":
		portForward(os.Args[2:])
	default:
		die(2, "unknown mode %q", os.Args[1])
	}
}
