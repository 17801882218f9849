package main

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// cpuTimes is the machine's CPU time in clock ticks from /proc/stat: busy
// (user, nice, system, irq, softirq), idle (idle, iowait) and stolen by
// the hypervisor. On a shared VM the steal varies from run to run, so the
// busy time per event is a steadier measure of the work done than a rate.
type cpuTimes struct {
	busy, idle, steal uint64
	// self is this process's user and system time.
	self uint64
}

// clockTicks is USER_HZ, 100 on every Linux platform Go supports.
const clockTicks = 100

func readCPUTimes() (cpuTimes, bool) {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return cpuTimes{}, false
	}
	defer f.Close()
	line, err := bufio.NewReader(f).ReadString('\n')
	if err != nil {
		return cpuTimes{}, false
	}
	fields := strings.Fields(line)
	if len(fields) < 9 || fields[0] != "cpu" {
		return cpuTimes{}, false
	}
	var v [8]uint64
	for i := range v {
		if v[i], err = strconv.ParseUint(fields[i+1], 10, 64); err != nil {
			return cpuTimes{}, false
		}
	}
	// user nice system idle iowait irq softirq steal
	t := cpuTimes{busy: v[0] + v[1] + v[2] + v[5] + v[6], idle: v[3] + v[4], steal: v[7]}
	self, ok := readSelfTicks()
	t.self = self
	return t, ok
}

// readSelfTicks reads this process's user and system time, in clock ticks,
// from /proc/self/stat.
func readSelfTicks() (uint64, bool) {
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return 0, false
	}
	// The command name, in parentheses, may hold spaces: fields count
	// from the last ')'. utime and stime are fields 14 and 15.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, false
	}
	fields := strings.Fields(string(b[i+1:]))
	if len(fields) < 13 {
		return 0, false
	}
	utime, err1 := strconv.ParseUint(fields[11], 10, 64)
	stime, err2 := strconv.ParseUint(fields[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return utime + stime, true
}

// cpuUse is what the machine did between two readings.
type cpuUse struct {
	busySeconds float64
	// selfSeconds is the part of busySeconds this process spent (the
	// rest is the database's, mostly, and the kernel's for it).
	selfSeconds float64
	stolen      float64 // share of all CPU time taken by the hypervisor
}

func (a cpuTimes) until(b cpuTimes) cpuUse {
	busy, idle, steal := b.busy-a.busy, b.idle-a.idle, b.steal-a.steal
	total := busy + idle + steal
	u := cpuUse{busySeconds: float64(busy) / clockTicks, selfSeconds: float64(b.self-a.self) / clockTicks}
	if total > 0 {
		u.stolen = float64(steal) / float64(total)
	}
	return u
}

// perEvent describes u for n events.
func (u cpuUse) perEvent(n int64) string {
	if n <= 0 {
		return ""
	}
	self := u.selfSeconds * 1e6 / float64(n)
	return fmt.Sprintf("machine CPU %.1f s busy = %.0f µs per event (this process %.0f µs, the rest %.0f µs); %.0f%% of the CPU time was stolen by the hypervisor",
		u.busySeconds, u.micros(n), self, max(u.micros(n)-self, 0), 100*u.stolen)
}

// micros is the machine's busy CPU time per event over n events, in µs.
func (u cpuUse) micros(n int64) float64 { return u.busySeconds * 1e6 / float64(max(n, 1)) }
