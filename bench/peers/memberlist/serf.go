// Serf agents (the Debian package's `serf` binary, memberlist inside) as a second real peer: N `serf agent`
// processes on 127.0.0.1, measured like the in-process memberlist nodes where a separate process allows.
//
// Detection times come from each agent's own log line "serf: EventMemberFailed: <name>", timestamped here as
// it arrives on the agent's stdout. The agent's event handlers and RPC event stream are not used: the agent
// coalesces member events for 1 to 3 s before delivering them, which would add that to every figure. CPU is
// each agent's utime + stime from /proc. Bytes are not measured: the agents share loopback with everything
// else on the machine, and serf offers no per-process byte counter.
package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

type serfAgent struct {
	name string
	cmd  *exec.Cmd
}

// serfLog collects, per observer, the nodes it has seen join and when it first saw each one fail.
type serfLog struct {
	mu     sync.Mutex
	joined map[string]map[string]bool
	failed map[string]map[string]time.Time // victim -> observer -> when
}

func (l *serfLog) read(observer string, lines *bufio.Scanner) {
	for lines.Scan() {
		now := time.Now()
		line := lines.Text()
		var kind, rest string
		if i := strings.Index(line, "serf: EventMemberJoin: "); i >= 0 {
			kind, rest = "join", line[i+len("serf: EventMemberJoin: "):]
		} else if i := strings.Index(line, "serf: EventMemberFailed: "); i >= 0 {
			kind, rest = "failed", line[i+len("serf: EventMemberFailed: "):]
		} else {
			continue
		}
		subject := strings.Fields(rest)
		if len(subject) == 0 {
			continue
		}
		l.mu.Lock()
		if kind == "join" {
			l.joined[observer][subject[0]] = true
		} else {
			if l.failed[subject[0]] == nil {
				l.failed[subject[0]] = map[string]time.Time{}
			}
			if _, seen := l.failed[subject[0]][observer]; !seen {
				l.failed[subject[0]][observer] = now
			}
		}
		l.mu.Unlock()
	}
}

func (l *serfLog) allJoined(n int) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, seen := range l.joined {
		if len(seen) < n {
			return false
		}
	}
	return true
}

func (l *serfLog) failedCount(victim string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.failed[victim])
}

func (l *serfLog) delays(victim string, since time.Time) []float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []float64
	for _, at := range l.failed[victim] {
		out = append(out, at.Sub(since).Seconds())
	}
	sort.Float64s(out)
	return out
}

// cpuOf returns a process's user + system CPU seconds from /proc/<pid>/stat.
func cpuOf(pid int) float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the parenthesised command name; utime and stime are fields 14 and 15 of the whole line.
	s := string(data)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) < 13 {
		return 0
	}
	utime, _ := strconv.ParseFloat(fields[11], 64)
	stime, _ := strconv.ParseFloat(fields[12], 64)
	return (utime + stime) / 100 // USER_HZ is 100 on Linux
}

func agentsCPU(agents []*serfAgent) float64 {
	total := 0.0
	for _, a := range agents {
		total += cpuOf(a.cmd.Process.Pid)
	}
	return total
}

func runSerf(n, rounds, basePort int, settle, steady, limit time.Duration, encrypt bool) int {
	profile := "lan"
	args := []string{}
	if encrypt {
		profile = "lan+encrypt"
		args = append(args, "-encrypt=MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=")
	}
	emit := func(metric string, value float64) {
		fmt.Printf("serf,%s,%d,%s,%.6g\n", profile, n, metric, value)
	}
	l := &serfLog{joined: map[string]map[string]bool{}, failed: map[string]map[string]time.Time{}}
	agents := make([]*serfAgent, n)
	defer func() {
		for _, a := range agents {
			if a != nil && a.cmd.ProcessState == nil {
				a.cmd.Process.Signal(syscall.SIGKILL)
				a.cmd.Wait()
			}
		}
	}()
	start := time.Now()
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("node-%d", i)
		argv := append([]string{"agent", "-node=" + name, "-log-level=info",
			fmt.Sprintf("-bind=127.0.0.1:%d", basePort+i),
			// RPC ports above the gossip ports; the RPC listener is required but unused here.
			fmt.Sprintf("-rpc-addr=127.0.0.1:%d", basePort+n+i)}, args...)
		if i > 0 {
			argv = append(argv, fmt.Sprintf("-join=127.0.0.1:%d", basePort))
		}
		cmd := exec.Command("serf", argv...)
		out, err := cmd.StdoutPipe()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		cmd.Stderr = cmd.Stdout
		l.mu.Lock()
		l.joined[name] = map[string]bool{}
		l.mu.Unlock()
		if err := cmd.Start(); err != nil {
			fmt.Fprintf(os.Stderr, "serf agent %d: %v (is the serf package installed?)\n", i, err)
			return 1
		}
		agents[i] = &serfAgent{name: name, cmd: cmd}
		go l.read(name, bufio.NewScanner(out))
		if i == 0 {
			// The seed must be listening before the others join it.
			time.Sleep(500 * time.Millisecond)
		}
	}
	for !l.allJoined(n) {
		if time.Since(start) > limit {
			fmt.Fprintln(os.Stderr, "serf: bootstrap did not converge")
			return 1
		}
		time.Sleep(10 * time.Millisecond)
	}
	emit("bootstrap_s", time.Since(start).Seconds())

	time.Sleep(settle)
	cpu0, t0 := agentsCPU(agents), time.Now()
	time.Sleep(steady)
	wall := time.Since(t0).Seconds()
	emit("steady_cpu_percent_per_node", 100*(agentsCPU(agents)-cpu0)/wall/float64(n))

	l.mu.Lock()
	falseDead := 0
	for _, byObserver := range l.failed {
		falseDead += len(byObserver)
	}
	l.mu.Unlock()
	emit("false_dead_before_crash", float64(falseDead))

	alive := agents
	for r := 0; r < rounds; r++ {
		victim := alive[len(alive)-1]
		alive = alive[:len(alive)-1]
		cpu0 = agentsCPU(alive)
		killed := time.Now()
		victim.cmd.Process.Signal(syscall.SIGKILL) // a crash: no leave
		victim.cmd.Wait()
		for l.failedCount(victim.name) < len(alive) {
			if time.Since(killed) > limit {
				fmt.Fprintf(os.Stderr, "serf round %d: only %d of %d saw %s fail\n", r, l.failedCount(victim.name), len(alive), victim.name)
				return 1
			}
			time.Sleep(10 * time.Millisecond)
		}
		wall = time.Since(killed).Seconds()
		delays := l.delays(victim.name, killed)
		emit(fmt.Sprintf("round%d_dead_first_s", r), delays[0])
		emit(fmt.Sprintf("round%d_dead_p50_s", r), quantile(delays, 0.5))
		emit(fmt.Sprintf("round%d_dead_all_s", r), delays[len(delays)-1])
		emit(fmt.Sprintf("round%d_cpu_percent_per_node", r), 100*(agentsCPU(alive)-cpu0)/wall/float64(len(alive)))
	}
	return 0
}
