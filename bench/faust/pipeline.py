# bench/faust/pipeline.py
#
# The Python Faust side of bench/pipeline.sh: one agent reads JSON objects from an input topic
# and sinks {"id": value.id, "n": value.n * 2} (JSON) to an output topic, at-least-once
# (Faust's default processing_guarantee) unless PIPELINE_GUARANTEE says exactly_once. Run by
# bench/pipeline.sh as
#   faust -A pipeline --datadir DIR worker -l warn --without-web
# with these environment variables (all required but the broker):
#   FAUST_APP_ID       app id, also the consumer group
#   FAUST_BROKER       broker URL (default kafka://127.0.0.1:9092)
#   PIPELINE_IN        input topic (exists already)
#   PIPELINE_OUT       output topic (exists already)
# Once the first rebalance is complete it writes `READY <unix time>` to the real stdout,
# flushed (Faust's worker redirects print() to its logger).

import os
import sys
import time

import faust

app = faust.App(
    os.environ['FAUST_APP_ID'],
    broker=os.environ.get('FAUST_BROKER', 'kafka://127.0.0.1:9092'),
    value_serializer='json',
    processing_guarantee=os.environ.get('PIPELINE_GUARANTEE', 'at_least_once'),
)

source = app.topic(os.environ['PIPELINE_IN'], value_serializer='json')
output = app.topic(os.environ['PIPELINE_OUT'], value_serializer='json')


@app.agent(source, sink=[output])
async def double(values):
    async for value in values:
        yield {'id': value['id'], 'n': value['n'] * 2}


_announced = False


@app.on_rebalance_complete.connect
async def _ready(sender, **kwargs):
    global _announced
    if not _announced:
        _announced = True
        sys.__stdout__.write(f'READY {time.time():.6f}\n')
        sys.__stdout__.flush()
