//! The thread that serves a producer's events (acknowledgements, errors, log lines), woken
//! only when there are some.
//!
//! rdkafka's `ThreadedProducer` polls in a loop with a 100 ms timeout, and its `poll` spins
//! through the last millisecond of every timeout (the time left is truncated to whole
//! milliseconds, and a 0 ms wait returns at once): measured, 9 ms of CPU a second per idle
//! producer, so the three producers of an idle worker took 2.7 % of a core. Here librdkafka
//! writes a byte to a pipe whenever the producer's queue becomes non-empty
//! (`rd_kafka_queue_io_event_enable`), and the thread blocks reading that pipe.

use std::io::{PipeReader, PipeWriter, Read, Write};
use std::ops::Deref;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use rdkafka::bindings as rdsys;
use rdkafka::producer::{BaseProducer, Producer, ProducerContext};

/// A librdkafka producer with its event thread; clones share both, and the thread stops when
/// the last clone is dropped.
pub struct ServedProducer<C: ProducerContext + 'static> {
    producer: Arc<BaseProducer<C>>,
    _thread: Arc<EventThread>,
}

impl<C: ProducerContext + 'static> Clone for ServedProducer<C> {
    fn clone(&self) -> Self {
        ServedProducer {
            producer: self.producer.clone(),
            _thread: self._thread.clone(),
        }
    }
}

/// The producer's own API (sending, flushing, transactions).
impl<C: ProducerContext + 'static> Deref for ServedProducer<C> {
    type Target = BaseProducer<C>;

    fn deref(&self) -> &BaseProducer<C> {
        &self.producer
    }
}

impl<C: ProducerContext + 'static> ServedProducer<C> {
    /// Starts serving `producer`'s events on a thread of its own.
    pub fn serve(producer: BaseProducer<C>) -> std::io::Result<Self> {
        let producer = Arc::new(producer);
        let (wake_reader, wake_writer) = std::io::pipe()?;
        set_nonblocking(&wake_writer)?;
        let stop_writer = wake_writer.try_clone()?;
        // SAFETY: the client is live (owned by `producer`); the queue reference taken here is
        // released by the thread, which also owns the pipe's write end librdkafka writes to,
        // and disables the writes before either goes.
        let queue = MainQueue(unsafe {
            let queue = rdsys::rd_kafka_queue_get_main(producer.client().native_ptr());
            rdsys::rd_kafka_queue_io_event_enable(
                queue,
                wake_writer.as_raw_fd(),
                c"!".as_ptr().cast(),
                1,
            );
            queue
        });
        let stopping = Arc::new(AtomicBool::new(false));
        let handle = std::thread::Builder::new()
            .name("faust-rs-produce".into())
            .spawn({
                let (producer, stopping) = (producer.clone(), stopping.clone());
                move || serve_events(&producer, queue, wake_reader, wake_writer, &stopping)
            })?;
        let thread = EventThread {
            stopping,
            stop_writer,
            handle: Some(handle),
        };
        Ok(ServedProducer {
            producer,
            _thread: Arc::new(thread),
        })
    }
}

/// A reference to a producer's main queue, for its event thread.
struct MainQueue(*mut rdsys::rd_kafka_queue_t);

// SAFETY: librdkafka's queues are thread-safe; the handle is used by the event thread alone.
unsafe impl Send for MainQueue {}

/// Serves the producer's events until told to stop, sleeping on the pipe in between.
fn serve_events<C: ProducerContext>(
    producer: &BaseProducer<C>,
    queue: MainQueue,
    mut wake: PipeReader,
    wake_writer: PipeWriter,
    stopping: &AtomicBool,
) {
    let mut bytes = [0u8; 64];
    loop {
        // One event per zero-timeout poll, as long as any is queued; an event queued after
        // the last look writes to the pipe again (the queue went from empty to non-empty).
        // SAFETY: the queue reference is live until released below.
        while unsafe { rdsys::rd_kafka_queue_length(queue.0) } > 0 {
            producer.poll(Duration::ZERO);
        }
        if stopping.load(Ordering::Acquire) {
            break;
        }
        match wake.read(&mut bytes) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                tracing::error!("the producer's event thread cannot read its pipe: {e}");
                break;
            }
        }
    }
    // SAFETY: no write to the pipe after this, and the queue reference is released once.
    unsafe {
        rdsys::rd_kafka_queue_io_event_enable(queue.0, -1, std::ptr::null(), 0);
        rdsys::rd_kafka_queue_destroy(queue.0);
    }
    drop(wake_writer);
}

/// Stops and joins the event thread when dropped.
struct EventThread {
    stopping: Arc<AtomicBool>,
    stop_writer: PipeWriter,
    handle: Option<JoinHandle<()>>,
}

impl Drop for EventThread {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::Release);
        // A full pipe already wakes the thread.
        let _ = self.stop_writer.write(b"!");
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

/// librdkafka needs the pipe's write end non-blocking.
fn set_nonblocking(writer: &PipeWriter) -> std::io::Result<()> {
    let fd = writer.as_raw_fd();
    // SAFETY: fcntl on a descriptor `writer` owns.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}
