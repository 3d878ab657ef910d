//! Instances: converging on a spec's instance list, starting a run (or waiting for its module), and what an
//! exit means (restart after a back-off, or finished for good, persisted).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use edge_proto::{EventKind, InstanceSpec};

use super::{Core, Instance};
use crate::clock::now_ms;
use crate::mail::Input;
use crate::runtime::RuntimeError;
use crate::supervisor::{Decision, Exit, Supervisor};
use crate::usage::{counted, Consumption};

impl Core {
    /// Stops what the spec no longer holds and starts what is new; leaves running and finished instances alone.
    pub(super) fn converge(&mut self, desired: Vec<InstanceSpec>) {
        let keep: HashSet<&str> = desired.iter().map(|s| s.id.as_str()).collect();
        let gone: Vec<String> = self.instances.keys().filter(|id| !keep.contains(id.as_str())).cloned().collect();
        for id in gone {
            if let Some(mut inst) = self.instances.remove(&id) {
                if let Some(t) = inst.task.take() {
                    t.abort();
                }
                self.event(&id, inst.sup.restarts, EventKind::Stopped);
                if !inst.spec.volumes.is_empty() {
                    // Volumes belong to the instance: gone with it (a restart keeps them).
                    let dir = self.runtime.instance_volumes(&id);
                    if let Err(e) = std::fs::remove_dir_all(&dir) {
                        tracing::warn!(error = %e, dir = %dir.display(), "cannot remove a stopped instance's volumes");
                    }
                }
            }
        }
        for spec in desired {
            if self.instances.contains_key(&spec.id) {
                continue; // Running already, or a duplicate id in the spec.
            }
            let id = spec.id.clone();
            let finished = self.store.finished(&id).unwrap_or_else(|e| {
                tracing::warn!(error = %e, instance = %id, "cannot read whether an instance finished");
                None
            });
            if let Some(done) = finished {
                // Ended for good in an earlier run of the agent: report it as it ended, never run it again.
                let sup = Supervisor::restore(id.clone(), spec.restart, &done);
                let inst =
                    Instance { spec, sup, run: 0, task: None, waiting_module: false, finished: true, usage: None };
                self.instances.insert(id, inst);
                continue;
            }
            let mut sup = Supervisor::new(id.clone(), spec.restart);
            // Started by an earlier run of this agent: starting it again is a restart.
            if let Ok(Some(before)) = self.store.restarts(&id) {
                sup.restarts = before.saturating_add(1);
                if let Err(e) = self.store.put_restarts(&id, sup.restarts) {
                    tracing::warn!(error = %e, "cannot persist a restart counter");
                }
            }
            let inst = Instance { spec, sup, run: 0, task: None, waiting_module: false, finished: false, usage: None };
            self.instances.insert(id.clone(), inst);
            self.start(&id);
        }
    }

    pub(super) fn start(&mut self, id: &str) {
        let Some(inst) = self.instances.get_mut(id).filter(|i| !i.finished) else { return };
        let sha = inst.spec.module;
        let bytes = if self.runtime.is_loaded(&sha) {
            None
        } else {
            match self.store.module(&sha) {
                Ok(Some(b)) => Some(Arc::new(b)),
                Ok(None) => {
                    inst.waiting_module = true;
                    inst.sup.waiting("fetching module");
                    self.ensure_fetch(sha);
                    return;
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot read a module from the store");
                    return;
                }
            }
        };
        inst.waiting_module = false;
        inst.run += 1;
        inst.sup.starting();
        let usage = Arc::new(Consumption::new(Instant::now()));
        inst.usage = Some(usage.clone());
        let (run, restarts, spec) = (inst.run, inst.sup.restarts, inst.spec.clone());
        let w = &self.wiring;
        let (runtime, inputs, logs, dropped) =
            (self.runtime.clone(), w.inputs.clone(), w.logs.clone(), w.lines_dropped.clone());
        let task = tokio::spawn(async move {
            let id = spec.id.clone();
            let began = Instant::now();
            let module = runtime.load(spec.module, bytes.unwrap_or_default()).await;
            let exit = match module {
                Ok(module) => {
                    let started = {
                        let (inputs, id) = (inputs.clone(), id.clone());
                        move || {
                            let _ = inputs.send(Input::Started { id, run, at_ms: now_ms() });
                        }
                    };
                    counted(usage, runtime.run(&module, &spec, logs, dropped, started)).await
                }
                Err(e) => {
                    if matches!(e, RuntimeError::Artifact(_)) {
                        let _ = inputs.send(Input::ModuleUnusable { sha: spec.module });
                    }
                    Exit::Failed(e.to_string())
                }
            };
            let _ = inputs.send(Input::Exited { id, run, exit, ran_for: began.elapsed() });
        });
        if let Some(inst) = self.instances.get_mut(id) {
            inst.task = Some(task);
        }
        self.event(id, restarts, EventKind::Starting);
    }

    pub(super) fn on_exit(&mut self, id: String, run: u64, exit: Exit, ran_for: Duration) {
        let Some(inst) = self.instances.get_mut(&id).filter(|i| i.run == run) else { return };
        inst.task = None;
        let decision = inst.sup.exited(&exit, ran_for);
        let restarts = inst.sup.restarts;
        if decision == Decision::Done {
            // Final: persisted before it is reported, so an agent restart reports it and runs nothing.
            if let Some(done) = inst.sup.finished() {
                inst.finished = true;
                if let Err(e) = self.store.put_finished(&id, &done) {
                    tracing::warn!(error = %e, "cannot persist a finished instance");
                }
            }
        }
        match &exit {
            Exit::Code(code) => self.event(&id, restarts, EventKind::Exited { code: *code }),
            Exit::Trap(reason) => self.event(&id, restarts, EventKind::Trapped { reason: reason.clone() }),
            Exit::Failed(reason) => self.event(&id, restarts, EventKind::Failed { reason: reason.clone() }),
        }
        if let Decision::RestartAfter(delay) = decision {
            let delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
            self.event(&id, restarts, EventKind::BackOff { delay_ms });
            let inputs = self.wiring.inputs.clone();
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                let _ = inputs.send(Input::RestartDue { id, run });
            });
        }
        self.heartbeat();
    }
}
