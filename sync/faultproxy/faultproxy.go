// Package faultproxy is a TCP proxy for tests that breaks connections on
// purpose: it cuts an upload part-way, cuts the answer after the server has
// done the work, swallows traffic, delays it or refuses connections. The
// mode can be switched at any time and applies to live connections too.
//
// After switching a mode back to Pass, a client may still hold a pooled
// keep-alive connection the proxy cut; tests should use fresh connections
// (http.Transport.DisableKeepAlives) or retry idempotent requests.
package faultproxy

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// Kind is what the proxy does to traffic.
type Kind int

const (
	KindPass        Kind = iota // forward both ways
	KindCutUpload               // forward Bytes client→server on a connection, then cut it
	KindCutResponse             // forward the request; cut as soon as the server answers
	KindDrop                    // accept and swallow everything, answer nothing
	KindDelay                   // forward, holding each chunk for Wait
	KindRefuse                  // reset new and live connections at once
)

func (k Kind) String() string {
	switch k {
	case KindPass:
		return "pass"
	case KindCutUpload:
		return "cut-upload"
	case KindCutResponse:
		return "cut-response"
	case KindDrop:
		return "drop"
	case KindDelay:
		return "delay"
	case KindRefuse:
		return "refuse"
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// Mode is a kind with its parameters. Count > 0 makes the fault fire that
// many times, after which the proxy passes traffic again.
type Mode struct {
	Kind  Kind
	Bytes int64         // KindCutUpload
	Wait  time.Duration // KindDelay
	Count int
}

// Pass forwards traffic untouched.
func Pass() Mode { return Mode{Kind: KindPass} }

// CutUpload cuts a connection once n bytes went client→server on it since
// the mode was set: the server sees a request that stops part-way.
func CutUpload(n int64) Mode { return Mode{Kind: KindCutUpload, Bytes: n} }

// CutResponse cuts a connection when the server's answer starts: the
// server has done the work, the client never hears of it.
func CutResponse() Mode { return Mode{Kind: KindCutResponse} }

// Drop swallows traffic both ways; clients wait until their own timeout.
func Drop() Mode { return Mode{Kind: KindDrop} }

// Delay holds every chunk for d before forwarding it.
func Delay(d time.Duration) Mode { return Mode{Kind: KindDelay, Wait: d} }

// Refuse resets connections as they arrive (and live ones on their next
// chunk), like a server that is down.
func Refuse() Mode { return Mode{Kind: KindRefuse} }

// Times limits the fault to k firings, then the proxy passes again.
func (m Mode) Times(k int) Mode { m.Count = k; return m }

func (m Mode) String() string {
	s := m.Kind.String()
	switch m.Kind {
	case KindCutUpload:
		s += fmt.Sprintf("(%d)", m.Bytes)
	case KindDelay:
		s += fmt.Sprintf("(%v)", m.Wait)
	}
	if m.Count > 0 {
		s += fmt.Sprintf("×%d", m.Count)
	}
	return s
}

// Proxy listens on 127.0.0.1 and forwards to a target address.
type Proxy struct {
	ln     net.Listener
	target string
	done   chan struct{}
	wg     sync.WaitGroup

	mu     sync.Mutex
	mode   Mode
	gen    uint64 // bumped by every mode change
	fired  int    // firings in the current mode
	faults int    // firings ever
	conns  map[*conn]struct{}
	closed bool
}

// New starts a proxy to target ("host:port") on a free loopback port.
func New(target string) (*Proxy, error) {
	if target == "" {
		return nil, errors.New("faultproxy: target address is required")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("faultproxy: listen: %w", err)
	}
	p := &Proxy{ln: ln, target: target, done: make(chan struct{}), conns: map[*conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is the proxy's "127.0.0.1:port".
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// URL is "http://" + Addr().
func (p *Proxy) URL() string { return "http://" + p.Addr() }

// SetTarget points new connections at another address (a restarted
// server on a new port); live connections keep theirs.
func (p *Proxy) SetTarget(target string) {
	p.mu.Lock()
	p.target = target
	p.mu.Unlock()
}

// Set switches the mode for new and live connections. Connections that
// swallowed data under Drop are closed, since their streams are broken.
func (p *Proxy) Set(m Mode) {
	p.mu.Lock()
	p.mode, p.fired = m, 0
	p.gen++
	broken := p.connsLocked((*conn).poisoned)
	p.mu.Unlock()
	killAll(broken)
}

// Mode is the mode in force (Pass once a counted fault is spent).
func (p *Proxy) Mode() Mode {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mode
}

// Faults counts the faults fired since the proxy started.
func (p *Proxy) Faults() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.faults
}

// CutAll closes every live connection now.
func (p *Proxy) CutAll() {
	p.mu.Lock()
	cs := p.connsLocked(nil)
	p.mu.Unlock()
	killAll(cs)
}

// connsLocked lists the live connections that pick chooses (nil: all); the
// caller holds p.mu and kills them after letting go of it.
func (p *Proxy) connsLocked(pick func(*conn) bool) []*conn {
	cs := make([]*conn, 0, len(p.conns))
	for c := range p.conns {
		if pick == nil || pick(c) {
			cs = append(cs, c)
		}
	}
	return cs
}

func killAll(cs []*conn) {
	for _, c := range cs {
		c.kill()
	}
}

// Close stops listening, cuts every connection and waits for them.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.mu.Unlock()
	close(p.done)
	err := p.ln.Close()
	p.CutAll()
	p.wg.Wait()
	return err
}

func (p *Proxy) current() (Mode, uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mode, p.gen
}

// fire records a firing of the mode of generation gen and says whether it
// may happen: not if the mode changed meanwhile or its count is spent.
func (p *Proxy) fire(gen uint64) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if gen != p.gen {
		return false
	}
	if p.mode.Count > 0 && p.fired >= p.mode.Count {
		return false
	}
	p.fired++
	p.faults++
	if p.mode.Count > 0 && p.fired >= p.mode.Count {
		p.mode, p.fired = Pass(), 0
		p.gen++
	}
	return true
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		cc, err := p.ln.Accept()
		if err != nil {
			select {
			case <-p.done:
				return
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return
		}
		c := &conn{p: p, client: cc}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			_ = cc.Close()
			return
		}
		p.conns[c] = struct{}{}
		p.wg.Add(1)
		p.mu.Unlock()
		go c.serve()
	}
}

type conn struct {
	p              *Proxy
	client, server net.Conn
	once           sync.Once
	mu             sync.Mutex
	dropped        bool
	gen            uint64 // generation upBytes counts for
	upBytes        int64
}

func (c *conn) poisoned() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.dropped
}

func (c *conn) kill() {
	c.once.Do(func() {
		if tc, ok := c.client.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // reset, like a dead peer
		}
		_ = c.client.Close()
		c.mu.Lock()
		s := c.server
		c.mu.Unlock()
		if s != nil {
			_ = s.Close()
		}
	})
}

func (c *conn) serve() {
	defer c.p.wg.Done()
	defer func() {
		c.kill()
		c.p.mu.Lock()
		delete(c.p.conns, c)
		c.p.mu.Unlock()
	}()
	m, gen := c.p.current()
	switch m.Kind {
	case KindRefuse:
		c.p.fire(gen)
		return
	case KindDrop:
		if c.p.fire(gen) {
			c.mu.Lock()
			c.dropped = true
			c.mu.Unlock()
			_, _ = io.Copy(io.Discard, c.client)
			return
		}
	}
	c.p.mu.Lock()
	target := c.p.target
	c.p.mu.Unlock()
	sc, err := net.DialTimeout("tcp", target, 10*time.Second)
	if err != nil {
		return
	}
	c.mu.Lock()
	c.server = sc
	c.mu.Unlock()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); c.pump(c.client, sc, true) }()
	go func() { defer wg.Done(); c.pump(sc, c.client, false) }()
	wg.Wait()
}

// pump copies src to dst chunk by chunk, consulting the mode before each.
func (c *conn) pump(src, dst net.Conn, up bool) {
	defer c.kill()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if !c.forward(dst, buf[:n], up) {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// forward applies the mode to one chunk; false ends the connection.
func (c *conn) forward(dst net.Conn, b []byte, up bool) bool {
	m, gen := c.p.current()
	switch m.Kind {
	case KindRefuse:
		c.p.fire(gen)
		return false
	case KindDrop:
		if c.p.fire(gen) {
			c.mu.Lock()
			c.dropped = true
			c.mu.Unlock()
			return true
		}
	case KindDelay:
		t := time.NewTimer(m.Wait)
		select {
		case <-t.C:
		case <-c.p.done:
			t.Stop()
			return false
		}
	case KindCutResponse:
		if !up && c.p.fire(gen) {
			return false
		}
	case KindCutUpload:
		if up {
			c.mu.Lock()
			if c.gen != gen {
				c.gen, c.upBytes = gen, 0
			}
			room := m.Bytes - c.upBytes
			c.upBytes += int64(len(b))
			c.mu.Unlock()
			if room < int64(len(b)) && c.p.fire(gen) {
				if room > 0 {
					_, _ = dst.Write(b[:room])
				}
				return false
			}
		}
	}
	_, err := dst.Write(b)
	return err == nil
}
