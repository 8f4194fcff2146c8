// Real hashicorp/memberlist nodes on loopback, for a side-by-side with swarm's membership agent
// (bench/peers/swarm_peers.cpp measures the same things the same way; bench/peers/run runs both).
//
// Starts N nodes in this process on 127.0.0.1, each with memberlist.DefaultLANConfig(), joins them all
// through node 0 and waits until every node sees N. After a settle period it measures a steady window (CPU,
// bytes), then runs `rounds` crash rounds: one node is shut down without a leave, as a crash would, and the
// time until each other node marks it dead is recorded. Bytes are counted by a wrapper around memberlist's
// own NetTransport: every UDP datagram and TCP stream byte each node sends and receives.
//
// With -serf it runs serf agents instead (serf.go).
//
// Output: CSV rows "peer,profile,n,metric,value", the same rows swarm_bench_peers prints.
package main

import (
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/memberlist"
)

// Bytes sent and received by every node of this process.
var sentBytes, receivedBytes atomic.Uint64

// countingTransport forwards to a NetTransport and counts every byte crossing it.
type countingTransport struct {
	inner   *memberlist.NetTransport
	packets chan *memberlist.Packet
	streams chan net.Conn
	done    chan struct{}
}

func newCountingTransport(port int) (*countingTransport, error) {
	inner, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{
		BindAddrs: []string{"127.0.0.1"},
		BindPort:  port,
		Logger:    log.New(io.Discard, "", 0),
	})
	if err != nil {
		return nil, err
	}
	t := &countingTransport{
		inner:   inner,
		packets: make(chan *memberlist.Packet),
		streams: make(chan net.Conn),
		done:    make(chan struct{}),
	}
	go func() {
		for {
			select {
			case p := <-inner.PacketCh():
				receivedBytes.Add(uint64(len(p.Buf)))
				select {
				case t.packets <- p:
				case <-t.done:
					return
				}
			case <-t.done:
				return
			}
		}
	}()
	go func() {
		for {
			select {
			case c := <-inner.StreamCh():
				select {
				case t.streams <- &countingConn{c}:
				case <-t.done:
					c.Close()
					return
				}
			case <-t.done:
				return
			}
		}
	}()
	return t, nil
}

func (t *countingTransport) FinalAdvertiseAddr(ip string, port int) (net.IP, int, error) {
	return t.inner.FinalAdvertiseAddr(ip, port)
}

func (t *countingTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	sentBytes.Add(uint64(len(b)))
	return t.inner.WriteTo(b, addr)
}

func (t *countingTransport) PacketCh() <-chan *memberlist.Packet { return t.packets }

func (t *countingTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	c, err := t.inner.DialTimeout(addr, timeout)
	if err != nil {
		return nil, err
	}
	return &countingConn{c}, nil
}

func (t *countingTransport) StreamCh() <-chan net.Conn { return t.streams }

func (t *countingTransport) Shutdown() error {
	// The forwarders keep draining while the inner transport shuts down: its listeners block on a full
	// channel, and its Shutdown waits for them.
	err := t.inner.Shutdown()
	close(t.done)
	return err
}

type countingConn struct{ net.Conn }

func (c *countingConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	receivedBytes.Add(uint64(n))
	return n, err
}

func (c *countingConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	sentBytes.Add(uint64(n))
	return n, err
}

// deaths records, for each victim, when each observer first marked it dead or gone.
type deaths struct {
	mu   sync.Mutex
	seen map[string]map[string]time.Time // victim -> observer -> when
}

type observer struct {
	name string
	d    *deaths
}

func (o *observer) NotifyJoin(*memberlist.Node)   {}
func (o *observer) NotifyUpdate(*memberlist.Node) {}
func (o *observer) NotifyLeave(n *memberlist.Node) {
	now := time.Now()
	o.d.mu.Lock()
	defer o.d.mu.Unlock()
	byObserver, ok := o.d.seen[n.Name]
	if !ok {
		byObserver = map[string]time.Time{}
		o.d.seen[n.Name] = byObserver
	}
	if _, done := byObserver[o.name]; !done {
		byObserver[o.name] = now
	}
}

func (d *deaths) count(victim string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.seen[victim])
}

// total counts every (observer, victim) death recorded so far.
func (d *deaths) total() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for _, byObserver := range d.seen {
		n += len(byObserver)
	}
	return n
}

func (d *deaths) delays(victim string, since time.Time) []float64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []float64
	for _, at := range d.seen[victim] {
		out = append(out, at.Sub(since).Seconds())
	}
	sort.Float64s(out)
	return out
}

func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime) + tv(ru.Stime)
}

func quantile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return -1
	}
	i := int(q * float64(len(sorted)-1))
	return sorted[i]
}

func main() {
	n := flag.Int("n", 32, "nodes")
	basePort := flag.Int("base-port", 27000, "node i listens on base-port + i (UDP and TCP)")
	rounds := flag.Int("rounds", 3, "crash rounds")
	settle := flag.Duration("settle", 5*time.Second, "wait after bootstrap so join gossip drains")
	steady := flag.Duration("steady", 30*time.Second, "steady window measured before the first crash (>= the 30 s push-pull period)")
	limit := flag.Duration("limit", 120*time.Second, "give up on one phase after this long")
	encrypt := flag.Bool("encrypt", false, "set a 32-byte SecretKey (AES-GCM on every packet, as swarm always seals)")
	serf := flag.Bool("serf", false, "run N serf agent processes (the serf package) instead of in-process memberlist nodes")
	flag.Parse()
	if *n < 2 || *rounds < 1 || *rounds >= *n {
		fmt.Fprintln(os.Stderr, "need n >= 2 and 1 <= rounds < n")
		os.Exit(2)
	}
	if *serf {
		os.Exit(runSerf(*n, *rounds, *basePort, *settle, *steady, *limit, *encrypt))
	}
	profile := "lan"
	if *encrypt {
		profile = "lan+encrypt"
	}
	emit := func(metric string, value float64) {
		fmt.Printf("memberlist,%s,%d,%s,%.6g\n", profile, *n, metric, value)
	}

	d := &deaths{seen: map[string]map[string]time.Time{}}
	nodes := make([]*memberlist.Memberlist, *n)
	start := time.Now()
	for i := range nodes {
		cfg := memberlist.DefaultLANConfig()
		cfg.Name = fmt.Sprintf("node-%d", i)
		cfg.BindAddr = "127.0.0.1"
		cfg.BindPort = *basePort + i
		cfg.AdvertiseAddr = "127.0.0.1"
		cfg.AdvertisePort = *basePort + i
		cfg.LogOutput = io.Discard
		cfg.Events = &observer{name: cfg.Name, d: d}
		if *encrypt {
			cfg.SecretKey = []byte("0123456789abcdef0123456789abcdef")
		}
		t, err := newCountingTransport(cfg.BindPort)
		if err != nil {
			fmt.Fprintf(os.Stderr, "node %d: %v\n", i, err)
			os.Exit(1)
		}
		cfg.Transport = t
		m, err := memberlist.Create(cfg)
		if err != nil {
			fmt.Fprintf(os.Stderr, "node %d: %v\n", i, err)
			os.Exit(1)
		}
		nodes[i] = m
	}
	seed := fmt.Sprintf("127.0.0.1:%d", *basePort)
	for i := 1; i < *n; i++ {
		if _, err := nodes[i].Join([]string{seed}); err != nil {
			fmt.Fprintf(os.Stderr, "node %d join: %v\n", i, err)
			os.Exit(1)
		}
	}
	converged := func(expected int, alive []*memberlist.Memberlist) bool {
		for _, m := range alive {
			if m.NumMembers() != expected {
				return false
			}
		}
		return true
	}
	for !converged(*n, nodes) {
		if time.Since(start) > *limit {
			least, most := *n, 0
			for _, m := range nodes {
				least, most = min(least, m.NumMembers()), max(most, m.NumMembers())
			}
			fmt.Fprintf(os.Stderr, "bootstrap did not converge in %v: nodes see %d to %d of %d\n", *limit, least, most, *n)
			os.Exit(1)
		}
		time.Sleep(10 * time.Millisecond)
	}
	emit("bootstrap_s", time.Since(start).Seconds())

	// Steady state: no change in membership, only probes, gossip and push-pull.
	time.Sleep(*settle)
	cpu0, sent0, recv0, t0 := cpuSeconds(), sentBytes.Load(), receivedBytes.Load(), time.Now()
	time.Sleep(*steady)
	wall := time.Since(t0).Seconds()
	emit("steady_cpu_percent_per_node", 100*(cpuSeconds()-cpu0)/wall/float64(*n))
	emit("steady_sent_bytes_per_node_s", float64(sentBytes.Load()-sent0)/wall/float64(*n))
	emit("steady_received_bytes_per_node_s", float64(receivedBytes.Load()-recv0)/wall/float64(*n))

	// Healthy nodes marked dead by someone before any crash (each such mark shows as a negative delay below).
	emit("false_dead_before_crash", float64(d.total()))

	alive := nodes
	for r := 0; r < *rounds; r++ {
		victim := alive[len(alive)-1]
		alive = alive[:len(alive)-1]
		name := victim.LocalNode().Name
		cpu0, sent0, recv0 = cpuSeconds(), sentBytes.Load(), receivedBytes.Load()
		killed := time.Now()
		victim.Shutdown() // no Leave: peers must detect it
		for d.count(name) < len(alive) {
			if time.Since(killed) > *limit {
				fmt.Fprintf(os.Stderr, "round %d: only %d of %d saw %s dead\n", r, d.count(name), len(alive), name)
				os.Exit(1)
			}
			time.Sleep(10 * time.Millisecond)
		}
		wall = time.Since(killed).Seconds()
		delays := d.delays(name, killed)
		emit(fmt.Sprintf("round%d_dead_first_s", r), delays[0])
		emit(fmt.Sprintf("round%d_dead_p50_s", r), quantile(delays, 0.5))
		emit(fmt.Sprintf("round%d_dead_all_s", r), delays[len(delays)-1])
		emit(fmt.Sprintf("round%d_cpu_percent_per_node", r), 100*(cpuSeconds()-cpu0)/wall/float64(len(alive)))
		emit(fmt.Sprintf("round%d_sent_bytes_per_node_s", r), float64(sentBytes.Load()-sent0)/wall/float64(len(alive)))
		emit(fmt.Sprintf("round%d_received_bytes_per_node_s", r), float64(receivedBytes.Load()-recv0)/wall/float64(len(alive)))
	}
	for _, m := range alive {
		m.Shutdown()
	}
}
