#!/usr/bin/env python3
"""bench/load.py — does the control plane keep its pace under agent load? (issue 10)

Start N workers of one app (a fresh app id per run, so fresh topics and groups), each
`faust-rs -A app.toml worker -l info --web-port P --web-bind 127.0.0.1 --web-host 127.0.0.1
--datadir DIR`. The app has

  - an agent `work` (concurrency 2, its topic `{id}-work` with 6 partitions, under
    `[app.limits] max_operations = 0`) whose body is CPU-heavy —
    `let x = 0; for i in 0..3000000 { x += i; }`, about 0.5 s of CPU per record — and then
    prints `DONE <key> <now()> <worker_id()>`;
  - a leader timer (`on_leader = true`) every 0.5 s printing `TICK <now()> <worker_id()>`.

Once every worker is ready (`GET /ready` 200) and a leader ticks, RECORDS keyed records
(k0, k1, ...: they spread over the 6 partitions) are produced with kcat. While they are
processed, every worker's `GET /health` is polled every 0.1 s with a 3 s timeout (a timeout
counts as 3 s). The processing phase ends when every key was seen in some worker's DONE lines,
or at the deadline (default RECORDS * 0.5 s * 1.5 / 2 cores + 60 s, the 0.5 s scaled with
--loop-count); then the workers get TERM and the drill waits for them to exit.

Figures printed (and written with --json FILE):

  terms       distinct epochs of `election leader: this worker leads (epoch N)` log lines
              from start-up to the TERM, and the number of `lost its term` lines
  tick gap    the longest time between consecutive TICK lines of all workers (by the now()
              they print), from the last tick before the records were produced to the end of
              processing (the time from the last tick to the end counts as a gap too; the
              gaps of the start-up, before that tick, do not count)
  /health     worst latency and 99th percentile (nearest rank), per worker and overall,
              with the number of timeouts and failed requests
  records     distinct keys processed / RECORDS by the end of the phase, duplicates (allowed:
              at-least-once); DONE lines written while the workers stop are reported apart
  wall time   of the processing phase: records produced -> the last new key's DONE

and the issue's goals, each with whether it holds: one term throughout, longest tick gap
<= 1.5 s, /health always under 0.5 s, every record processed.

  bench/load.py [--workers 3] [--records 240] [--interval 0.5] [--concurrency 2]
                [--loop-count 3000000] [--base-port 6300] [--deadline S] [--json FILE]
                [--keep-logs] [--check] [--start-timeout 180] [--stop-timeout 60]

Exit status: 0 when the run completed (whatever the figures), 1 when it could not run (no
broker, a worker that did not start, ...) or with --check when a goal fails.

Needs the broker (scripts/kafka.sh start) and kcat; uses target/release/faust-rs (env
FAUST_RS). Standard library only: run it with any python3. Every wait is a poll with a
deadline; every worker it started is stopped on exit (TERM, then KILL after --stop-timeout).
The workers' logs go to a temporary directory, removed after the run unless --keep-logs or
the run failed (it then says where they are). FAUST_RS_LOG is removed from the workers'
environment: the figures come from their `-l info` log lines.
"""

import argparse
import calendar
import http.client
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAUST_RS = os.environ.get('FAUST_RS', os.path.join(REPO, 'target', 'release', 'faust-rs'))
POLL = 0.05  # seconds between looks at the workers' output
PARTITIONS = 6
LOOP_SECONDS = 0.5  # CPU seconds of one record's body at the default --loop-count
DEFAULT_LOOP = 3000000

GOAL_TICK_GAP = 1.5
GOAL_HEALTH = 0.5


def log(msg):
    print(f'[{time.strftime("%H:%M:%S")}] {msg}', file=sys.stderr, flush=True)


APP = '''# bench/load.py: a CPU-heavy agent and a leader timer (issue 10).
[app]
id = "{app_id}"
broker = "{broker}"
value_serializer = "raw"

[app.limits]
max_operations = 0

[[topics]]
name = "{topic}"
partitions = {partitions}

[[agents]]
name = "work"
concurrency = {concurrency}
body = \'\'\'
// Burns about 0.5 s of CPU per record, then says which record it finished.
let x = 0;
for i in 0..{loop_count} {{ x += i; }}
print("DONE " + key + " " + now() + " " + worker_id());
()
\'\'\'

[[timers]]
name = "tick"
interval = {interval}
on_leader = true
body = \'\'\'
print("TICK " + now() + " " + worker_id());
\'\'\'
'''

LEADS = re.compile(r'election (\S+): this worker leads \(epoch (\d+)\)')
LOST = re.compile(r'election (\S+): lost its term \(epoch (\d+)\)')
STAMP = re.compile(r'^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?Z')


def log_time(line, default):
    """Unix time of a log line from its RFC 3339 prefix (tracing's default), else `default`."""
    m = STAMP.match(line)
    if not m:
        return default
    return calendar.timegm(time.strptime(m.group(1), '%Y-%m-%dT%H:%M:%S')) + float(m.group(2) or 0)


class Tail:
    """The complete lines appended to a file since the last call."""

    def __init__(self, path):
        self.path = path
        self._offset = 0
        self._partial = b''

    def lines(self):
        try:
            with open(self.path, 'rb') as f:
                f.seek(self._offset)
                data = f.read()
        except FileNotFoundError:
            return []
        self._offset += len(data)
        lines = (self._partial + data).split(b'\n')
        self._partial = lines.pop()
        return [line.decode('utf-8', 'replace') for line in lines]


class Worker:
    def __init__(self, index, app, workdir, args):
        self.index = index
        self.port = args.base_port + index
        self.ident = f'127.0.0.1:{self.port}'
        self.out_path = os.path.join(workdir, f'worker{index}.out')
        self.err_path = os.path.join(workdir, f'worker{index}.log')
        env = {k: v for k, v in os.environ.items() if k != 'FAUST_RS_LOG'}
        cmd = [FAUST_RS, '-A', app, 'worker', '-l', 'info', '--web-port', str(self.port),
               '--web-bind', '127.0.0.1', '--web-host', '127.0.0.1',
               '--datadir', os.path.join(workdir, f'data{index}')]
        with open(self.out_path, 'wb') as out, open(self.err_path, 'wb') as err:
            self.proc = subprocess.Popen(cmd, cwd=workdir, env=env, stdout=out, stderr=err,
                                         stdin=subprocess.DEVNULL)
        self.pid = self.proc.pid
        self.out = Tail(self.out_path)
        self.err = Tail(self.err_path)
        self.ready = False
        self.exit_code = None       # once it exited
        self.exited_early = False   # exited before the drill sent TERM
        self.killed = False         # needed KILL after TERM
        self.health = []            # (unix time sent, latency s, outcome: ok|timeout|error)
        self.stats = None


def http_get(port, path, timeout):
    """(status, body, seconds) of GET path; raises socket.timeout / OSError. `timeout` bounds
    the whole request (connect, send, answer), not each step."""
    start = time.monotonic()
    conn = http.client.HTTPConnection('127.0.0.1', port, timeout=timeout)
    try:
        conn.connect()
        conn.sock.settimeout(max(0.001, timeout - (time.monotonic() - start)))
        conn.request('GET', path)
        resp = conn.getresponse()
        body = resp.read()
        elapsed = time.monotonic() - start
        if elapsed > timeout:
            raise socket.timeout('answer after the timeout')
        return resp.status, body, elapsed
    finally:
        conn.close()


def health_poller(worker, stop, period, timeout):
    """GET /health every `period` s until `stop` is set; a timeout is recorded as `timeout`."""
    next_at = time.monotonic()
    while not stop.is_set():
        sent = time.time()
        t0 = time.monotonic()
        try:
            status, _, elapsed = http_get(worker.port, '/health', timeout)
            worker.health.append((sent, elapsed, 'ok' if status == 200 else f'http {status}'))
        except (socket.timeout, TimeoutError):
            worker.health.append((sent, timeout, 'timeout'))
        except (OSError, http.client.HTTPException) as e:
            worker.health.append((sent, time.monotonic() - t0, f'error: {e.__class__.__name__}'))
        next_at = max(next_at + period, time.monotonic())
        stop.wait(max(0.0, next_at - time.monotonic()))


class Drill:
    def __init__(self, args, workdir):
        self.args = args
        self.workdir = workdir
        self.app_id = f'faust-rs-load-{os.getpid()}-{int(time.time())}'
        self.topic = f'{self.app_id}-work'
        self.app = os.path.join(workdir, 'app.toml')
        with open(self.app, 'w') as f:
            f.write(APP.format(app_id=self.app_id, broker=args.broker, topic=self.topic,
                               partitions=PARTITIONS, concurrency=args.concurrency,
                               loop_count=args.loop_count, interval=args.interval))
        self.workers = []
        self.ticks = []   # (now() printed, worker id)
        self.done = []    # (key, now() printed, worker id, unix time read)
        self.leads = []   # (log time, worker index, election, epoch)
        self.lost = []    # (log time, worker index, election, epoch, line)
        self.t_term = None  # when the drill sent TERM to the workers

    # -- watching the workers ------------------------------------------------------------
    def poll(self):
        now = time.time()
        for w in self.workers:
            for line in w.out.lines():
                parts = line.split()
                if len(parts) >= 3 and parts[0] == 'TICK':
                    self.ticks.append((float(parts[1]), parts[2]))
                elif len(parts) >= 4 and parts[0] == 'DONE':
                    self.done.append((parts[1], float(parts[2]), parts[3], now))
            for line in w.err.lines():
                m = LEADS.search(line)
                if m:
                    self.leads.append((log_time(line, now), w.index, m.group(1), int(m.group(2))))
                m = LOST.search(line)
                if m:
                    self.lost.append((log_time(line, now), w.index, m.group(1), int(m.group(2)),
                                      line.strip()))
            if w.exit_code is None and w.proc.poll() is not None:
                w.exit_code = w.proc.returncode
                if self.t_term is None:
                    w.exited_early = True
                    log(f'  worker {w.index} (pid {w.pid}) exited by itself with {w.exit_code}; '
                        f'see {w.err_path}')

    def wait_for(self, predicate, timeout, what, fail_on_exit=True):
        deadline = time.monotonic() + timeout
        while True:
            self.poll()
            if fail_on_exit:
                dead = [w for w in self.workers if w.exited_early]
                if dead:
                    raise RuntimeError(f'worker {dead[0].index} (pid {dead[0].pid}) exited with '
                                       f'{dead[0].exit_code} while waiting for {what}; '
                                       f'see {dead[0].err_path}')
            result = predicate()
            if result:
                return result
            if time.monotonic() > deadline:
                raise TimeoutError(f'timed out after {timeout:.0f}s waiting for {what}')
            time.sleep(POLL)

    def all_ready(self):
        for w in self.workers:
            if not w.ready:
                try:
                    status, _, _ = http_get(w.port, '/ready', 1.0)
                    w.ready = status == 200
                except (OSError, http.client.HTTPException):
                    pass
        return all(w.ready for w in self.workers)

    # -- the run -------------------------------------------------------------------------
    def check_app(self):
        r = subprocess.run([FAUST_RS, '-A', self.app, 'check'], capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f'{FAUST_RS} check refuses the drill\'s app {self.app}:\n'
                               f'{r.stderr.strip()}')

    def produce(self):
        bootstrap = self.args.broker.split('://', 1)[-1]
        data = ''.join(f'k{i}:v{i}\n' for i in range(self.args.records))
        subprocess.run(['kcat', '-b', bootstrap, '-P', '-t', self.topic, '-K:'],
                       input=data.encode(), check=True, timeout=120)

    def run(self):
        a = self.args
        self.check_app()
        log(f'app {self.app_id}: {a.workers} workers, agent concurrency {a.concurrency}, '
            f'loop {a.loop_count}, timer {a.interval}s; logs in {self.workdir}')
        for i in range(a.workers):
            self.workers.append(Worker(i, self.app, self.workdir, a))
        t_start = time.time()
        self.wait_for(self.all_ready, a.start_timeout, 'every worker to be ready')
        self.wait_for(lambda: self.ticks, a.start_timeout, 'a leader tick')
        log(f'  all ready and a leader ticks after {time.time() - t_start:.1f}s '
            f'(leader {self.ticks[-1][1]})')

        stop_health = threading.Event()
        pollers = [threading.Thread(target=health_poller, daemon=True,
                                    args=(w, stop_health, a.health_period, a.health_timeout))
                   for w in self.workers]
        deadline_s = a.deadline if a.deadline is not None else (
            a.records * LOOP_SECONDS * (a.loop_count / DEFAULT_LOOP) * 1.5 / 2 + 60)
        keys = {f'k{i}' for i in range(a.records)}
        t_produce = time.time()
        for t in pollers:
            t.start()
        try:
            self.produce()
            log(f'  produced {a.records} records to {self.topic} in {time.time() - t_produce:.2f}s; '
                f'deadline {deadline_s:.0f}s')
            deadline = time.monotonic() + deadline_s
            last_report = time.monotonic()
            timed_out = False
            while True:
                self.poll()
                seen = {k for k, *_ in self.done} & keys
                if seen == keys:
                    break
                if all(w.exit_code is not None for w in self.workers):
                    log('  every worker exited: ending the processing phase')
                    timed_out = True
                    break
                if time.monotonic() > deadline:
                    log(f'  deadline: {len(seen)}/{a.records} records processed after {deadline_s:.0f}s')
                    timed_out = True
                    break
                if time.monotonic() - last_report >= 15:
                    last_report = time.monotonic()
                    log(f'  {len(seen)}/{a.records} records processed, {len(self.ticks)} ticks, '
                        f'{len(set(e for *_, e in self.leads))} terms so far')
                time.sleep(POLL)
            t_read_end = time.time()
            n_done = len(self.done)  # DONE lines of the processing phase; later ones drain
        finally:
            stop_health.set()
        for t in pollers:
            t.join(a.health_timeout + 1)
        # the end of processing: the DONE of the last key to be processed for the first time
        first = {}
        for k, ts, _, _ in self.done[:n_done]:
            if k in keys and (k not in first or ts < first[k]):
                first[k] = ts
        t_end = t_read_end if timed_out or not first else max(first.values())
        def fetch_stats(w):  # best effort: the workers' own counters
            try:
                status, body, _ = http_get(w.port, '/stats', a.health_timeout)
                w.stats = json.loads(body) if status == 200 else None
            except (OSError, http.client.HTTPException, ValueError):
                pass
        fetchers = [threading.Thread(target=fetch_stats, args=(w,), daemon=True)
                    for w in self.workers if w.exit_code is None]
        for t in fetchers:
            t.start()
        for t in fetchers:
            t.join(a.health_timeout + 1)
        self.stop()
        self.poll()
        return self.figures(t_start, t_produce, t_end, timed_out, keys, n_done)

    def stop(self):
        if self.t_term is None:
            self.t_term = time.time()
        for w in self.workers:
            if w.proc.poll() is None:
                w.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.args.stop_timeout
        for w in self.workers:
            try:
                w.proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log(f'  worker {w.index} (pid {w.pid}) still running {self.args.stop_timeout:.0f}s '
                    f'after TERM: KILL')
                w.killed = True
                w.proc.kill()
                w.proc.wait()
            if w.exit_code is None:
                w.exit_code = w.proc.returncode

    # -- figures -------------------------------------------------------------------------
    def figures(self, t_start, t_produce, t_end, timed_out, keys, n_done):
        a = self.args
        # terms: the default election's, from start-up to the TERM
        leads = [x for x in self.leads if x[2] == 'leader' and x[0] < self.t_term]
        epochs = sorted({e for *_, e in leads})
        terms = [dict(epoch=e, worker=self.workers[i].ident, at=round(t - t_start, 3))
                 for t, i, _, e in sorted(leads)]
        lost = [x for x in self.lost if x[0] < self.t_term]
        lost_after = [x for x in self.lost if x[0] >= self.t_term]
        # ticks: from the last one before the records were produced (the drill waited for
        # one) through the processing phase; the time from the last tick to the end counts
        all_ticks = sorted(self.ticks)
        before = [t for t in all_ticks if t[0] < t_produce]
        ticks = sorted(t for t in all_ticks if t_produce <= t[0] <= t_end)
        window = before[-1:] + ticks
        gaps = [(b[0] - a_[0], a_[0]) for a_, b in zip(window, window[1:])]
        if window:
            gaps.append((t_end - window[-1][0], window[-1][0]))
        longest, at = max(gaps) if gaps else (t_end - t_produce, t_produce)
        tickers = {}
        for _, ident in ticks:
            tickers[ident] = tickers.get(ident, 0) + 1
        # /health
        def health_figures(samples):
            lat = sorted(s[1] for s in samples)
            if not lat:
                return dict(requests=0, worst=None, p99=None, timeouts=0, errors=0, over_goal=0)
            p99 = lat[max(0, math.ceil(0.99 * len(lat)) - 1)]
            return dict(requests=len(lat), worst=lat[-1], p99=p99,
                        timeouts=sum(1 for s in samples if s[2] == 'timeout'),
                        errors=sum(1 for s in samples if s[2] not in ('ok', 'timeout')),
                        over_goal=sum(1 for s in samples if s[1] >= GOAL_HEALTH or s[2] != 'ok'))
        per_worker = {w.ident: health_figures(w.health) for w in self.workers}
        overall = health_figures([s for w in self.workers for s in w.health])
        # records
        counts = {}
        by_worker = {}
        for k, _, ident, _ in self.done[:n_done]:
            counts[k] = counts.get(k, 0) + 1
            by_worker[ident] = by_worker.get(ident, 0) + 1
        processed = len(set(counts) & keys)
        duplicates = sum(n - 1 for n in counts.values() if n > 1)
        # finished while the workers stopped (a warm shutdown finishes what it took)
        drained = {k for k, *_ in self.done[n_done:]} & keys
        drained_new = len(drained - set(counts))
        goals = dict(
            one_term=len(epochs) == 1,
            tick_gap=longest <= GOAL_TICK_GAP,
            health=overall['requests'] > 0 and overall['over_goal'] == 0,
            all_processed=processed == len(keys),
        )
        return dict(
            app_id=self.app_id, binary=FAUST_RS, workers=a.workers, records=a.records,
            interval=a.interval, concurrency=a.concurrency, loop_count=a.loop_count,
            partitions=PARTITIONS, workdir=self.workdir,
            terms=dict(count=len(epochs), epochs=epochs, elected=terms,
                       lost_lines=len(lost), lost=[x[4] for x in lost],
                       lost_lines_after_term=len(lost_after)),
            ticks=dict(count=len(ticks), longest_gap=longest,
                       long_gaps=[(round(g, 3), round(t - t_produce, 3))
                                  for g, t in sorted(gaps, key=lambda x: x[1]) if g > GOAL_TICK_GAP],
                       longest_gap_after=at - t_produce, by_worker=tickers),
            health=dict(overall=overall, per_worker=per_worker,
                        period=a.health_period, timeout=a.health_timeout),
            processed=dict(distinct=processed, records=len(keys), duplicates=duplicates,
                           by_worker=by_worker, deadline_hit=timed_out,
                           done_lines_while_stopping=len(self.done) - n_done,
                           new_keys_while_stopping=drained_new),
            wall_time=t_end - t_produce,
            worker_exits={w.ident: dict(code=w.exit_code, early=w.exited_early, killed=w.killed)
                          for w in self.workers},
            worker_stats={w.ident: w.stats for w in self.workers},
            goals=goals,
        )


def fmt_s(x):
    return '-' if x is None else f'{x:.3f}s'


def report(f):
    yes = lambda ok: 'yes' if ok else 'NO'
    out = []
    out.append(f'faust-rs under agent load: {f["workers"]} workers, {f["records"]} records over '
               f'{f["partitions"]} partitions, agent concurrency {f["concurrency"]}, '
               f'loop {f["loop_count"]}, leader timer {f["interval"]}s')
    out.append(f'binary: {f["binary"]}')
    t = f['terms']
    elected = ', '.join(f'{e["epoch"]} by {e["worker"]} at +{e["at"]:.1f}s' for e in t['elected'])
    out.append(f'terms: {t["count"]} (epochs {t["epochs"]}; elected: {elected or "none"}); '
               f'"lost its term" lines: {t["lost_lines"]}'
               + (f' (+{t["lost_lines_after_term"]} after TERM)' if t['lost_lines_after_term'] else ''))
    k = f['ticks']
    out.append(f'longest gap between leader ticks: {k["longest_gap"]:.3f}s '
               f'(it began at produce{k["longest_gap_after"]:+.1f}s); '
               f'{k["count"]} ticks while processing, by worker {k["by_worker"]}')
    if k['long_gaps']:
        out.append(f'  gaps over {GOAL_TICK_GAP}s: ' + ', '.join(
            f'{g:.1f}s at produce{t:+.1f}s' for g, t in k['long_gaps']))
    h = f['health']
    o = h['overall']
    out.append(f'/health (every {h["period"]}s, timeout {h["timeout"]}s; a timeout counts as '
               f'{h["timeout"]}s): worst {fmt_s(o["worst"])}, p99 {fmt_s(o["p99"])} over '
               f'{o["requests"]} requests; {o["timeouts"]} timeouts, {o["errors"]} errors, '
               f'{o["over_goal"]} at or over {GOAL_HEALTH}s')
    for ident, p in h['per_worker'].items():
        out.append(f'  {ident}: worst {fmt_s(p["worst"])}, p99 {fmt_s(p["p99"])}, '
                   f'{p["requests"]} requests, {p["timeouts"]} timeouts, {p["errors"]} errors')
    p = f['processed']
    out.append(f'records processed: {p["distinct"]}/{p["records"]}, duplicates {p["duplicates"]}'
               f'{" (deadline hit)" if p["deadline_hit"] else ""}; DONE lines by worker '
               f'{p["by_worker"]}')
    if p['done_lines_while_stopping']:
        out.append(f'  while the workers stopped (not counted above): '
                   f'{p["done_lines_while_stopping"]} more DONE lines, '
                   f'{p["new_keys_while_stopping"]} of them keys not processed before')
    out.append(f'processing wall time: {f["wall_time"]:.1f}s')
    exits = ', '.join(f'{i}: {e["code"]}' + (' (exited before TERM)' if e['early'] else '')
                      + (' (KILLed)' if e['killed'] else '') for i, e in f['worker_exits'].items())
    out.append(f'worker exit codes: {exits}')
    stats = {i: s.get('rebalances') for i, s in f['worker_stats'].items() if s}
    if stats:
        out.append(f'agent-group rebalances (/stats): {stats}')
    g = f['goals']
    out.append(f'goals (issue 10): one term throughout: {yes(g["one_term"])}; '
               f'longest tick gap <= {GOAL_TICK_GAP}s: {yes(g["tick_gap"])}; '
               f'/health always under {GOAL_HEALTH}s: {yes(g["health"])}; '
               f'every record processed: {yes(g["all_processed"])}')
    return '\n'.join(out)


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--workers', type=int, default=3)
    p.add_argument('--records', type=int, default=240)
    p.add_argument('--interval', type=float, default=0.5, help='leader timer interval (s)')
    p.add_argument('--concurrency', type=int, default=2, help="the agent's concurrency")
    p.add_argument('--loop-count', type=int, default=DEFAULT_LOOP,
                   help="the agent body's loop bound (3000000: about 0.5 s of CPU)")
    p.add_argument('--base-port', type=int, default=6300, help='web ports base, base+1, ...')
    p.add_argument('--broker', default=os.environ.get('FAUST_BROKER', 'kafka://127.0.0.1:9092'))
    p.add_argument('--deadline', type=float, default=None,
                   help='seconds from producing until the processing phase is given up; default '
                        'RECORDS * 0.5 * (LOOP_COUNT / 3000000) * 1.5 / 2 + 60')
    p.add_argument('--start-timeout', type=float, default=180.0,
                   help='seconds for every worker to be ready and a leader to tick')
    p.add_argument('--stop-timeout', type=float, default=60.0,
                   help='seconds after TERM before a worker is KILLed')
    p.add_argument('--health-period', type=float, default=0.1)
    p.add_argument('--health-timeout', type=float, default=3.0)
    p.add_argument('--json', help='also write the figures to this file')
    p.add_argument('--keep-logs', action='store_true', help="keep the workers' logs")
    p.add_argument('--check', action='store_true', help='exit 1 when a goal fails')
    args = p.parse_args()

    if not os.access(FAUST_RS, os.X_OK):
        if 'FAUST_RS' in os.environ:
            sys.exit(f'FAUST_RS={FAUST_RS} is not an executable')
        subprocess.run(['cargo', 'build', '--release', '--quiet'], cwd=REPO, check=True)
    if shutil.which('kcat') is None:
        sys.exit('kcat is not installed')
    if subprocess.run([os.path.join(REPO, 'scripts', 'kafka.sh'), 'ping'],
                      stdout=subprocess.DEVNULL).returncode != 0:
        sys.exit('no broker answers: run scripts/kafka.sh start')

    # TERM or HUP to the drill: unwind through the `finally` that stops the workers
    def on_signal(signum, _frame):
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    workdir = tempfile.mkdtemp(prefix='faust-rs-load-')
    drill = Drill(args, workdir)
    ok = False
    try:
        figures = drill.run()
        ok = True
    except (RuntimeError, TimeoutError, subprocess.SubprocessError, OSError) as e:
        log(f'the drill failed: {e}')
    except (KeyboardInterrupt, SystemExit):
        log('interrupted: stopping the workers')
        raise
    finally:
        drill.stop()
        if ok and not args.keep_logs:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            log(f'worker logs kept in {workdir}')
    if not ok:
        sys.exit(1)
    print(report(figures), flush=True)
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(figures, f, indent=2)
    if args.check and not all(figures['goals'].values()):
        sys.exit(1)


if __name__ == '__main__':
    main()
