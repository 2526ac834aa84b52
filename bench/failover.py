#!/usr/bin/env python3
"""bench/failover.py — leader fail-over gap of faust-rs or of the real Python Faust.

For each round: start N workers of the leader tutorial (a fresh app id, so a fresh consumer
group and topics) — faust-rs with an app file written for the round, or Python Faust with
bench/faust/leader.py — wait until exactly one of them ticks steadily, make it stop leading
(SIGTERM, SIGKILL, or for faust-rs a stand-down: `faust-rs leader --stand-down`), and
measure the time until another worker prints its first tick:

  gap    = first tick of the new leader - moment the signal was sent
  silent = first tick of the new leader - last tick of the old leader

It also checks that there is one leader at a time: no tick from a second worker while the
first leads, and after the fail-over only the new leader ticks.

  bench/failover.py [--impl faust-rs|faust] [--rounds 3] [--signals TERM,KILL,STANDDOWN]
                    [--workers 3]
                            [--session-timeout S] [--heartbeat-interval S] [--interval 2.0]
                            [--phase-jitter 6] [--settle S] [--json FILE] [--keep-logs]
                            [--election-heartbeat-interval S] [--kafka-debug cgrp,eos]

Needs the broker (scripts/kafka.sh start); for Python Faust it runs bench/faust/setup.sh
first (a no-op once installed); for faust-rs it uses target/release/faust-rs (env FAUST_RS). Standard library only: run it with any python3. Every wait is a poll with a
deadline; every worker it started is stopped on exit, and the round's topics are deleted.
Each round's worker logs go to a temporary directory, removed after a good round unless
--keep-logs (a failed round keeps them and says where).
"""

import argparse
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'faust')
REPO = os.path.dirname(os.path.dirname(HERE))
# The workers' control token (`leader --stand-down` must carry it): one per run.
CONTROL_TOKEN = os.environ.setdefault('FAUST_RS_WEB_TOKEN', os.urandom(16).hex())
FAUST_RS = os.environ.get('FAUST_RS', os.path.join(REPO, 'target', 'release', 'faust-rs'))
VENV = os.environ.get('FAUST_VENV', os.path.join(REPO, '.bench', 'faust-venv'))
FAUST = os.path.join(VENV, 'bin', 'faust')
VPYTHON = os.path.join(VENV, 'bin', 'python')
POLL = 0.05  # seconds between looks at the workers' output


def log(msg):
    print(f'[{time.strftime("%H:%M:%S")}] {msg}', file=sys.stderr, flush=True)


FAUST_RS_APP = '''# The leader tutorial (configs/leader.toml) with the benchmark's timer interval and
# session timeout, and a TICK line for measuring.
[app]
id = "{app_id}"
broker = "{broker}"
value_serializer = "raw"
{timing}
{kafka}
[[agents]]
name = "say"
body = \'\'\'print(value)\'\'\'

[[timers]]
name = "publish_greetings"
interval = {interval}
on_leader = true
body = \'\'\'
print("PUBLISHING ON LEADER!");
print("TICK " + now() + " " + worker_id());
say.send(str(random()));
\'\'\'
'''


def faust_rs_command(index, app_id, workdir, args):
    timing = []
    if args.session_timeout is not None:
        # The leader's fail-over is the election groups' business.
        timing.append(f'session_timeout = {args.session_timeout}')
        timing.append(f'election_session_timeout = {args.session_timeout}')
    timing.extend(args.app_line)
    if args.heartbeat_interval is not None:
        timing.append(f'heartbeat_interval = {args.heartbeat_interval}')
    if args.election_heartbeat_interval is not None:
        timing.append(f'election_heartbeat_interval = {args.election_heartbeat_interval}')
    app = os.path.join(workdir, 'leader.toml')
    if not os.path.exists(app):
        with open(app, 'w') as f:
            kafka_lines = list(args.kafka_line)
            if args.kafka_debug:
                kafka_lines.append(f'debug = "{args.kafka_debug}"')
            kafka = '\n[kafka]\n' + '\n'.join(kafka_lines) + '\n' if kafka_lines else ''
            f.write(FAUST_RS_APP.format(app_id=app_id, broker=args.broker, interval=args.interval,
                                        timing='\n'.join(timing), kafka=kafka))
    port = args.base_port + index
    cmd = [FAUST_RS, '-A', app, '--datadir', os.path.join(workdir, f'data{index}'), 'worker',
           '-l', 'info', '--web-port', str(port), '--web-bind', '127.0.0.1', '--web-host', '127.0.0.1']
    return cmd, f'127.0.0.1:{port}'


class Worker:
    def __init__(self, index, app_id, workdir, args):
        self.index = index
        self.port = args.base_port + index
        self.out_path = os.path.join(workdir, f'worker{index}.out')
        self.err_path = os.path.join(workdir, f'worker{index}.log')
        env = dict(os.environ,
                   FAUST_RS_WEB_TOKEN=CONTROL_TOKEN,
                   FAUST_APP_ID=app_id,
                   FAUST_BROKER=args.broker,
                   FAUST_TIMER_INTERVAL=str(args.interval))
        if args.session_timeout is not None:
            env['FAUST_SESSION_TIMEOUT'] = str(args.session_timeout)
        if args.heartbeat_interval is not None:
            env['FAUST_HEARTBEAT_INTERVAL'] = str(args.heartbeat_interval)
        if args.kafka_debug:
            env['FAUST_RS_LOG'] = 'info,faust_rs::election=debug,librdkafka=debug'
        if args.impl == 'faust-rs':
            cmd, ident = faust_rs_command(index, app_id, workdir, args)
        else:
            cmd = [FAUST, '-A', 'leader', '--datadir', os.path.join(workdir, f'data{index}'),
                   'worker', '-l', 'info', '--web-port', str(self.port)]
            ident = None
        with open(self.out_path, 'wb') as out, open(self.err_path, 'wb') as err:
            self.proc = subprocess.Popen(cmd, cwd=HERE, env=env, stdout=out, stderr=err,
                                         stdin=subprocess.DEVNULL)
        self.pid = self.proc.pid
        # What its TICK lines name it by: faust-rs its worker id, Python Faust its pid.
        self.ident = ident or str(self.pid)
        self._offset = 0
        self._partial = b''

    def new_ticks(self):
        """(unix time, worker ident) of the TICK lines written since the last call."""
        with open(self.out_path, 'rb') as f:
            f.seek(self._offset)
            data = f.read()
        self._offset += len(data)
        data = self._partial + data
        lines = data.split(b'\n')
        self._partial = lines.pop()
        ticks = []
        for line in lines:
            if line.startswith(b'TICK '):
                _, ts, ident = line.decode().split()
                ticks.append((float(ts), ident))
        return ticks

    def stop(self, timeout=30.0):
        if self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class Cluster:
    def __init__(self, app_id, workdir, args):
        self.workers = [Worker(i, app_id, workdir, args) for i in range(args.workers)]
        self.ticks = []  # (unix time, worker ident), in the order seen

    def poll(self):
        for w in self.workers:
            self.ticks.extend(w.new_ticks())
        for w in self.workers:
            if w.proc.poll() is not None and not getattr(w, 'expected_exit', False):
                raise RuntimeError(f'worker {w.index} (pid {w.pid}) exited with '
                                   f'{w.proc.returncode}; see {w.err_path}')

    def wait_for(self, predicate, timeout, what):
        deadline = time.monotonic() + timeout
        while True:
            self.poll()
            result = predicate()
            if result:
                return result
            if time.monotonic() > deadline:
                raise TimeoutError(f'timed out after {timeout:.0f}s waiting for {what}')
            time.sleep(POLL)

    def stop(self):
        for w in self.workers:
            if w.proc.poll() is None:
                w.proc.send_signal(signal.SIGTERM)
        for w in self.workers:
            w.stop()


def steady_leader(ticks, count):
    """The worker whose last `count` ticks are the last `count` ticks of all, else None."""
    if len(ticks) < count:
        return None
    tail = {pid for _, pid in ticks[-count:]}
    return tail.pop() if len(tail) == 1 else None


def run_round(args, signame, round_no):
    workdir = tempfile.mkdtemp(prefix=f'{args.impl}-failover-')
    result = _run_round(args, signame, round_no, workdir)
    if not args.keep_logs and result['one_leader']:
        shutil.rmtree(workdir, ignore_errors=True)
    return result


def _run_round(args, signame, round_no, workdir):
    app_id = f'{args.impl}-failover-{os.getpid()}-{int(time.time())}-{signame.lower()}{round_no}'
    log(f'{signame} round {round_no}: app {app_id}, {args.workers} workers, logs in {workdir}')
    cluster = Cluster(app_id, workdir, args)
    try:
        start = time.time()
        leader = cluster.wait_for(lambda: steady_leader(cluster.ticks, args.steady),
                                  args.start_timeout, f'{args.steady} ticks in a row from one worker')
        first_ticks = [t for t in cluster.ticks]
        pids = {pid for _, pid in first_ticks}
        period = [b[0] - a[0] for a, b in zip(first_ticks[-args.steady:], first_ticks[-args.steady + 1:])]
        log(f'  leader {leader} after {first_ticks[0][0] - start:.1f}s; '
            f'tick period {statistics.mean(period):.3f}s; workers that ticked: {sorted(pids)}')
        # signal at a random phase: right after a tick, the gap would be phase-locked to the
        # timer and to the heartbeats (all workers start both at the same rebalance)
        # --settle first: workers started together keep joining the election group for a
        # while, and a hand-off in a group still taking them in is slower than in a settled one
        if args.phase_jitter > 0 or args.settle > 0:
            until = time.monotonic() + args.settle + random.uniform(0, args.phase_jitter)
            cluster.wait_for(lambda: time.monotonic() >= until,
                             args.settle + args.phase_jitter + 1, 'the settling and the jitter')
            if steady_leader(cluster.ticks, args.steady) != leader:
                raise RuntimeError(f'leadership moved from {leader} without a signal')
        old = next(w for w in cluster.workers if w.ident == leader)
        last_old = cluster.ticks[-1][0]
        t_signal = time.time()
        if signame == 'STANDDOWN':
            subprocess.run([FAUST_RS, 'leader', '--stand-down', '--web-port', str(old.port)],
                           check=True, stdout=subprocess.DEVNULL)
        else:
            old.expected_exit = True
            os.kill(old.pid, getattr(signal, 'SIG' + signame))

        def new_leader_tick():
            return next(((ts, pid) for ts, pid in cluster.ticks
                         if pid != leader and ts > t_signal), None)
        timeout = args.failover_timeout or (
            3 * (args.session_timeout if args.session_timeout is not None else 60.0) + 60)
        t_new, new_pid = cluster.wait_for(new_leader_tick, timeout, 'a tick from another worker')
        # the old leader may tick between signal and exit (TERM); that counts against "silent"
        last_old = max([ts for ts, pid in cluster.ticks if pid == leader], default=last_old)
        gap, silent = t_new - t_signal, t_new - last_old
        log(f'  {signame} -> new leader {new_pid}: gap {gap:.3f}s, silent {silent:.3f}s')
        # after the fail-over: the new leader keeps ticking, and it alone
        n_after = len(cluster.ticks)
        cluster.wait_for(lambda: sum(1 for ts, p in cluster.ticks[n_after:] if p == new_pid) >= args.steady,
                         args.interval * args.steady + 30, 'the new leader to keep ticking')
        after = {p for ts, p in cluster.ticks if ts >= t_new}
        dual_before = len(pids) > 1
        dual_after = after != {new_pid}
        if dual_before or dual_after:
            log(f'  WARNING: more than one worker ticked: before {sorted(pids)}, after {sorted(after)}')
        return dict(signal=signame, round=round_no, app_id=app_id, gap=gap, silent=silent,
                    old_leader=leader, new_leader=new_pid,
                    one_leader=not (dual_before or dual_after), workdir=workdir)
    finally:
        cluster.stop()
        delete_topics(args, app_id)


def delete_topics(args, app_id):
    if args.impl == 'faust-rs':
        return  # topics are deleted with the rest of the broker's data by `kafka.sh reset`
    code = f'''
import asyncio, sys
from aiokafka.admin import AIOKafkaAdminClient
async def main():
    admin = AIOKafkaAdminClient(bootstrap_servers=sys.argv[1])
    await admin.start()
    try:
        names = [t for t in await admin.list_topics() if t.startswith(sys.argv[2] + '-')]
        if names:
            await admin.delete_topics(names)
    finally:
        await admin.close()
asyncio.run(main())
'''
    bootstrap = args.broker.split('://', 1)[-1]
    r = subprocess.run([VPYTHON, '-c', code, bootstrap, app_id], capture_output=True, text=True)
    if r.returncode != 0:
        log(f'  (could not delete the topics of {app_id}: {r.stderr.strip().splitlines()[-1:]})')


def summary(results):
    lines = []
    for signame in dict.fromkeys(r['signal'] for r in results):
        for key in ('gap', 'silent'):
            xs = [r[key] for r in results if r['signal'] == signame]
            lines.append(f'{signame:<5} {key:<7} n={len(xs)}  min {min(xs):7.3f}s  '
                         f'median {statistics.median(xs):7.3f}s  max {max(xs):7.3f}s')
    return '\n'.join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--impl', choices=['faust-rs', 'faust'], default='faust-rs')
    p.add_argument('--rounds', type=int, default=3)
    p.add_argument('--signals', default='TERM,KILL',
                   help='TERM, KILL, and for faust-rs STANDDOWN, comma-separated')
    p.add_argument('--workers', type=int, default=3)
    p.add_argument('--broker', default=os.environ.get('FAUST_BROKER', 'kafka://127.0.0.1:9092'))
    p.add_argument('--interval', type=float, default=2.0, help='timer interval (s)')
    p.add_argument('--session-timeout', type=float, default=None,
                   help="broker_session_timeout (s); default: Faust's own (60)")
    p.add_argument('--heartbeat-interval', type=float, default=None,
                   help="broker_heartbeat_interval (s); default: Faust's own (3)")
    p.add_argument('--base-port', type=int, default=6070, help='web ports base, base+1, ...')
    p.add_argument('--steady', type=int, default=3, help='ticks in a row that make a leader')
    p.add_argument('--phase-jitter', type=float, default=6.0,
                   help='signal the leader a random 0..S seconds after it is found (0: at once, '
                        'right after a tick); default 6 = lcm of the 2 s timer and 3 s heartbeat')
    p.add_argument('--settle', type=float, default=0.0,
                   help='seconds to wait once the leader is found, before the jitter (default 0)')
    p.add_argument('--start-timeout', type=float, default=120.0)
    p.add_argument('--failover-timeout', type=float, default=None)
    p.add_argument('--election-heartbeat-interval', type=float, default=None,
                   help="faust-rs only: the app's election_heartbeat_interval (s); default: its own")
    p.add_argument('--app-line', action='append', default=[], metavar='KEY = VALUE',
                   help="faust-rs only: one more line for the app's [app] section (repeatable), "
                        'e.g. "evict_dead_leaders = false"')
    p.add_argument('--kafka-line', action='append', default=[], metavar='"KEY" = VALUE',
                   help="faust-rs only: one more line for the app's [kafka] table (repeatable), "
                        'e.g. for a secured listener; values may read the environment: '
                        '"sasl.password" = { env = "VAR" }')
    p.add_argument('--kafka-debug', metavar='CONTEXTS',
                   help="faust-rs only: librdkafka debug contexts (e.g. cgrp,eos) in the workers' "
                        'logs, with the election\'s stage timings; use with --keep-logs')
    p.add_argument('--json', help='also write the results to this file')
    p.add_argument('--keep-logs', action='store_true',
                   help="keep each round's worker logs (kept anyway when a round fails)")
    args = p.parse_args()

    if args.impl == 'faust':
        subprocess.run([os.path.join(HERE, 'setup.sh')], check=True)
    elif not os.access(FAUST_RS, os.X_OK):
        subprocess.run(['cargo', 'build', '--release', '--quiet'], cwd=REPO, check=True)
    if subprocess.run([os.path.join(REPO, 'scripts', 'kafka.sh'), 'ping'],
                      stdout=subprocess.DEVNULL).returncode != 0:
        sys.exit('no broker answers: run scripts/kafka.sh start')
    results = []
    for signame in args.signals.split(','):
        for round_no in range(1, args.rounds + 1):
            results.append(run_round(args, signame.strip().upper(), round_no))
    defaults = {'faust': ('60s (default)', '3s (default)'),
                'faust-rs': ('15s for elections, 6s for agents (defaults)', '1.5s (default)')}
    st = f'{args.session_timeout}s' if args.session_timeout is not None else defaults[args.impl][0]
    hb = f'{args.heartbeat_interval}s' if args.heartbeat_interval is not None else defaults[args.impl][1]
    print(f'{args.impl} leader fail-over, {args.workers} workers, timer {args.interval}s, '
          f'session timeout {st}, heartbeat interval {hb}'
          + ''.join(f', {line}' for line in args.app_line))
    for r in results:
        print(f'{r["signal"]:<5} round {r["round"]}: gap {r["gap"]:7.3f}s  silent {r["silent"]:7.3f}s'
              f'  one leader: {"yes" if r["one_leader"] else "NO"}')
    print(summary(results))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(dict(impl=args.impl, session_timeout=args.session_timeout,
                           heartbeat_interval=args.heartbeat_interval,
                           interval=args.interval, results=results), f, indent=2)
    if not all(r['one_leader'] for r in results):
        sys.exit(1)


if __name__ == '__main__':
    main()
