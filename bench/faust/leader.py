# examples/leader.py
#
# Faust's leader-election tutorial app, as in its docs (playbooks/leader-election), run by
# the real Python Faust for side-by-side benchmarks with faust-rs. Differences from the
# tutorial, all through the environment:
#   FAUST_APP_ID           app id (default 'leader-example')
#   FAUST_BROKER           broker URL (default kafka://127.0.0.1:9092)
#   FAUST_TIMER_INTERVAL   timer interval in seconds (default 2.0)
#   FAUST_SESSION_TIMEOUT  broker_session_timeout in seconds (unset: Faust's default, 60.0)
#   FAUST_HEARTBEAT_INTERVAL  broker_heartbeat_interval in seconds (unset: Faust's default, 3.0)
# and the timer also writes `TICK <unix time> <pid>` straight to the real stdout, flushed,
# so a benchmark can measure leader gaps across processes (Faust's worker redirects
# print() to its logger, which adds a prefix and a log level).

import os
import sys
import time

import faust

settings = {}
if os.environ.get('FAUST_SESSION_TIMEOUT'):
    settings['broker_session_timeout'] = float(os.environ['FAUST_SESSION_TIMEOUT'])
if os.environ.get('FAUST_HEARTBEAT_INTERVAL'):
    settings['broker_heartbeat_interval'] = float(os.environ['FAUST_HEARTBEAT_INTERVAL'])

app = faust.App(
    os.environ.get('FAUST_APP_ID', 'leader-example'),
    url=os.environ.get('FAUST_BROKER', 'kafka://127.0.0.1:9092'),
    value_serializer='raw',
    **settings,
)


@app.agent()
async def say(greetings):
    async for greeting in greetings:
        print(greeting)


import random


@app.timer(float(os.environ.get('FAUST_TIMER_INTERVAL', '2.0')), on_leader=True)
async def publish_greetings():
    print('PUBLISHING ON LEADER!')
    sys.__stdout__.write(f'TICK {time.time():.6f} {os.getpid()}\n')
    sys.__stdout__.flush()
    greeting = str(random.random())
    await say.send(value=greeting)
