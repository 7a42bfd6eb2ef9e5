//! Sector generation off the UI thread: a few threads take sectors from one shared queue,
//! generate them with the sim's `SectorGenerator`, measure them as the designer tools do and
//! send them back in small batches (so progress shows). A new request replaces the queue: the
//! sectors the screen no longer needs are never generated.

use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use astroboids_sim::sectors::SectorGenerator;
use astroboids_sim::space::SectorCoord;

use super::cache::{ConfigKey, GeneratedSector};

/// Sectors a thread takes from the queue at once (and sends back together).
const BATCH_SECTORS: usize = 16;
/// Most generating threads (sector generation is short and the UI needs a core).
const MAX_THREADS: usize = 8;
/// How soon the UI is woken after an answer: soon, but not once per batch.
const WAKE_AFTER: Duration = Duration::from_millis(50);

/// One sector to generate for one configuration.
#[derive(Clone)]
pub struct Task {
    pub generation: u64,
    pub key: ConfigKey,
    pub generator: Arc<SectorGenerator>,
    pub sector_size: f32,
    pub coord: SectorCoord,
    /// Whether the map draws its features (else only its measures are kept).
    pub keep_contents: bool,
}

/// A generated sector, with what it was asked under.
#[derive(Debug)]
pub struct Answer {
    pub request: u64,
    pub generation: u64,
    pub key: ConfigKey,
    pub coord: SectorCoord,
    pub sector: GeneratedSector,
}

#[derive(Default)]
struct Queue {
    request: u64,
    /// Last first: threads pop from the end, so the first task asked for is done first.
    tasks: Vec<Task>,
    stop: bool,
    /// Woken when answers are sent (set once the view is first drawn).
    wake: Option<egui::Context>,
}

struct Shared {
    queue: Mutex<Queue>,
    work: Condvar,
}

pub struct Worker {
    shared: Arc<Shared>,
    answers: Receiver<Vec<Answer>>,
    threads: Vec<JoinHandle<()>>,
}

impl Worker {
    pub fn start() -> Self {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            work: Condvar::new(),
        });
        let (send, answers) = mpsc::channel();
        let count = std::thread::available_parallelism()
            .map_or(2, |n| n.get().saturating_sub(1))
            .clamp(1, MAX_THREADS);
        let threads = (0..count)
            .map(|i| {
                let shared = shared.clone();
                let send = send.clone();
                std::thread::Builder::new()
                    .name(format!("design-generate-{i}"))
                    .spawn(move || generate_until_stopped(&shared, &send))
                    .expect("a thread starts")
            })
            .collect();
        Self {
            shared,
            answers,
            threads,
        }
    }

    /// Replaces whatever is queued with `tasks` (in the order given), as request `request`.
    pub fn replace(&self, request: u64, mut tasks: Vec<Task>) {
        tasks.reverse();
        let mut queue = self
            .shared
            .queue
            .lock()
            .expect("no worker panics holding it");
        queue.request = request;
        queue.tasks = tasks;
        drop(queue);
        self.shared.work.notify_all();
    }

    /// The UI to wake when answers arrive.
    pub fn wake(&self, ctx: &egui::Context) {
        let mut queue = self
            .shared
            .queue
            .lock()
            .expect("no worker panics holding it");
        if queue.wake.is_none() {
            queue.wake = Some(ctx.clone());
        }
    }

    /// Every answer sent so far, without waiting.
    pub fn answers(&self) -> Vec<Answer> {
        self.answers.try_iter().flatten().collect()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Ok(mut queue) = self.shared.queue.lock() {
            queue.stop = true;
            queue.tasks.clear();
        }
        self.shared.work.notify_all();
        for thread in self.threads.drain(..) {
            // A thread that panicked has nothing left to clean up.
            let _ = thread.join();
        }
    }
}

fn generate_until_stopped(shared: &Shared, send: &Sender<Vec<Answer>>) {
    loop {
        let (request, batch, wake) = {
            let mut queue = shared.queue.lock().expect("no worker panics holding it");
            while queue.tasks.is_empty() && !queue.stop {
                queue = shared
                    .work
                    .wait(queue)
                    .expect("no worker panics holding it");
            }
            if queue.stop {
                return;
            }
            let from = queue.tasks.len().saturating_sub(BATCH_SECTORS);
            let mut batch = queue.tasks.split_off(from);
            batch.reverse();
            (queue.request, batch, queue.wake.clone())
        };
        let answers = batch
            .into_iter()
            .map(|task| {
                let contents = task.generator.generate(task.coord);
                Answer {
                    request,
                    generation: task.generation,
                    key: task.key,
                    coord: task.coord,
                    sector: GeneratedSector::of(contents, task.sector_size, task.keep_contents),
                }
            })
            .collect();
        if send.send(answers).is_err() {
            return;
        }
        if let Some(ctx) = wake {
            ctx.request_repaint_after(WAKE_AFTER);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use astroboids_sim::config::UniverseConfig;

    #[test]
    fn a_request_is_generated_as_the_sim_generates_it() {
        let config = UniverseConfig::default();
        let generator = Arc::new(SectorGenerator::new(&config, 7));
        let key = ConfigKey::of(&config, 7);
        let worker = Worker::start();
        let coords: Vec<SectorCoord> = (0..40).map(|x| SectorCoord::new(x, -x)).collect();
        let tasks = coords
            .iter()
            .map(|&coord| Task {
                generation: 3,
                key,
                generator: generator.clone(),
                sector_size: 1000.0,
                coord,
                keep_contents: coord.x % 2 == 0,
            })
            .collect();
        worker.replace(1, tasks);
        let mut answers = Vec::new();
        // Waits for the threads (bounded); what is checked is what arrived, not when.
        for _ in 0..2_000 {
            answers.extend(worker.answers());
            if answers.len() == coords.len() {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(answers.len(), coords.len());
        for answer in &answers {
            assert_eq!((answer.request, answer.generation), (1, 3));
            let expected = generator.generate(answer.coord);
            assert_eq!(
                answer.sector.summary.asteroids as usize,
                expected.asteroids.len()
            );
            let kept = answer.sector.contents.as_ref();
            assert_eq!(kept, (answer.coord.x % 2 == 0).then_some(&expected));
        }
    }
}
