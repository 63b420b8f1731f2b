package main

import (
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
)

// countingProxy forwards loopback TCP connections to one redis-server and
// counts the round trips made over them, from outside whoever connects.
//
// A round trip is a request batch answered: on each connection, the first
// bytes Redis sends after the client has sent something count once, and
// nothing more counts until the client sends again. So a command is one
// round trip, a pipeline or a MULTI/EXEC sent in one write is one, a
// blocking XREAD is one when it answers, and what Redis pushes unasked (a
// PUBLISH reaching a subscriber) is none. A pipeline that the client writes
// in pieces Redis answers one by one would count once per piece; the small
// pipelines of a lock service fit one write.
type countingProxy struct {
	ln     net.Listener
	target string
	trips  atomic.Int64

	mu    sync.Mutex
	conns map[net.Conn]bool
	wg    sync.WaitGroup
}

func startProxy(target string) (*countingProxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &countingProxy{ln: ln, target: target, conns: map[net.Conn]bool{}}
	p.wg.Go(p.serve)
	return p, nil
}

// addr is where clients connect instead of the redis-server.
func (p *countingProxy) addr() string { return p.ln.Addr().String() }

func (p *countingProxy) serve() {
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return // closed by stop
		}
		server, err := net.Dial("tcp", p.target)
		if err != nil {
			client.Close()
			continue
		}
		if !p.track(client, server) {
			return
		}
		p.wg.Go(func() { p.forward(client, server) })
	}
}

// track remembers the pair for stop; false when the proxy is stopping.
func (p *countingProxy) track(conns ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conns == nil {
		for _, c := range conns {
			c.Close()
		}
		return false
	}
	for _, c := range conns {
		p.conns[c] = true
	}
	return true
}

func (p *countingProxy) forward(client, server net.Conn) {
	defer func() {
		client.Close()
		server.Close()
		p.mu.Lock()
		delete(p.conns, client)
		delete(p.conns, server)
		p.mu.Unlock()
	}()
	// asked is set before the request is passed on, so the answer can
	// never be seen before it.
	var asked atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 32<<10)
		for {
			n, err := client.Read(buf)
			if n > 0 {
				asked.Store(true)
				if _, werr := server.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				if tc, ok := server.(*net.TCPConn); ok && errors.Is(err, io.EOF) {
					_ = tc.CloseWrite()
				}
				return
			}
		}
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := server.Read(buf)
		if n > 0 {
			if asked.Swap(false) {
				p.trips.Add(1)
			}
			if _, werr := client.Write(buf[:n]); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	client.Close()
	<-done
}

// stop closes the listener and every connection, and waits for the
// forwarding goroutines.
func (p *countingProxy) stop() {
	p.ln.Close()
	p.mu.Lock()
	for c := range p.conns {
		c.Close()
	}
	p.conns = nil
	p.mu.Unlock()
	p.wg.Wait()
}
