//! The decoder thread behind [`super::GlmGenerator`]: continuous batching across callers.
//!
//! Any number of threads (the worker's pages in flight) prepare their requests on their own
//! (image decode, processor, vision tower) and hand the ready prompts to one thread that owns a
//! [`Scheduler`]. That thread admits each request as soon as it arrives and a slot (and KV
//! budget) is free, prefills it between two decode steps, runs one ragged decode step for every
//! running sequence, and answers each request the moment its sequence finishes — no request
//! waits for the slowest one of a fixed batch.
//!
//! Failure stays local: a sequence's own error answers that request only; a failed decoder step
//! (e.g. out of memory) answers the sequences that were running with the error, while the ones
//! still waiting stay queued; a panic in a step rebuilds the scheduler and answers everything it
//! held. The thread ends when the [`DecodeLoop`] is dropped and nothing is left to decode.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::mpsc::{self, Receiver, RecvError, Sender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use folio_glm45v::generate::batch::{BatchOptions, BatchRequest, RequestId, Scheduler};
use folio_glm45v::generate::{Flow, Generation};
use folio_glm45v::model::Glm45v;

/// A request's answer: its generation, or why it has none.
pub type Answer = Result<Generation, String>;

struct Submission {
    request: BatchRequest,
    reply: Sender<Answer>,
}

/// Handle to the decoder thread; dropping it lets the thread finish what it holds and end.
pub struct DecodeLoop {
    tx: Mutex<Option<Sender<Submission>>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for DecodeLoop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecodeLoop").finish_non_exhaustive()
    }
}

impl DecodeLoop {
    /// Starts the thread over `glm`'s decoder with `opts` (validated here).
    pub fn start(glm: Arc<Glm45v>, opts: BatchOptions) -> Result<Self, String> {
        // Validate before spawning, so a bad option is an error and not a dead thread.
        Scheduler::new(&glm.model, opts).map_err(|e| e.to_string())?;
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("glm45v-decode".into())
            .spawn(move || serve(&glm, opts, &rx))
            .map_err(|e| format!("cannot start the decoder thread: {e}"))?;
        Ok(Self {
            tx: Mutex::new(Some(tx)),
            thread: Some(thread),
        })
    }

    /// Queues `request`; the returned receiver yields its answer once it finishes.
    pub fn submit(&self, request: BatchRequest) -> Result<Receiver<Answer>, String> {
        let (reply, answer) = mpsc::channel();
        let guard = self.tx.lock().unwrap_or_else(|p| p.into_inner());
        let tx = guard
            .as_ref()
            .ok_or_else(|| "the decoder is shutting down".to_string())?;
        tx.send(Submission { request, reply })
            .map_err(|_| "the decoder thread has stopped".to_string())?;
        Ok(answer)
    }

    /// Waits for a submitted request's answer.
    pub fn wait(answer: &Receiver<Answer>) -> Answer {
        answer
            .recv()
            .unwrap_or_else(|RecvError| Err("the decoder thread dropped the request".into()))
    }
}

impl Drop for DecodeLoop {
    fn drop(&mut self) {
        // Closing the channel lets the thread drain and end.
        self.tx.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The thread's body: one scheduler at a time (a new one after a panic).
fn serve(glm: &Glm45v, opts: BatchOptions, rx: &Receiver<Submission>) {
    let mut replies: HashMap<RequestId, Sender<Answer>> = HashMap::new();
    let mut open = true;
    while open {
        let Ok(mut sched) = Scheduler::new(&glm.model, opts) else {
            return; // validated in `start`; cannot fail the second time
        };
        loop {
            if sched.is_idle() {
                match rx.recv() {
                    Ok(s) => submit(&mut sched, &mut replies, s),
                    Err(RecvError) => {
                        open = false;
                        break;
                    }
                }
            }
            loop {
                match rx.try_recv() {
                    Ok(s) => submit(&mut sched, &mut replies, s),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        open = false;
                        break;
                    }
                }
            }
            let step = std::panic::catch_unwind(AssertUnwindSafe(|| {
                sched.step(&mut |_, _| Flow::Continue)
            }));
            match step {
                Ok(Ok(done)) => {
                    for (id, result) in done {
                        if let Some(reply) = replies.remove(&id) {
                            let _ = reply.send(result.map_err(|e| e.to_string()));
                        }
                    }
                }
                Ok(Err(e)) => {
                    // The running sequences were dropped; waiting ones stay queued.
                    let waiting: Vec<RequestId> = sched.waiting_ids().collect();
                    let msg = format!("decoder step failed: {e}");
                    tracing::warn!(error = %e, lost = replies.len() - waiting.len(),
                        "glm45v: a batched decoder step failed");
                    replies.retain(|id, reply| {
                        let keep = waiting.contains(id);
                        if !keep {
                            let _ = reply.send(Err(msg.clone()));
                        }
                        keep
                    });
                }
                Err(_) => {
                    tracing::error!(
                        requests = replies.len(),
                        "glm45v: the decoder panicked; answering every request it held"
                    );
                    for (_, reply) in replies.drain() {
                        let _ = reply.send(Err("the decoder panicked".into()));
                    }
                    break;
                }
            }
            if !open && sched.is_idle() {
                break;
            }
        }
    }
}

fn submit(
    sched: &mut Scheduler<'_>,
    replies: &mut HashMap<RequestId, Sender<Answer>>,
    s: Submission,
) {
    match sched.submit(s.request) {
        Ok(id) => {
            replies.insert(id, s.reply);
        }
        Err(e) => {
            let _ = s.reply.send(Err(e.to_string()));
        }
    }
}
