//! The volume quota as a WASI shim: the preview 1 calls that can grow a file (`fd_write`, `fd_pwrite`,
//! `fd_allocate`, `fd_filestat_set_size`) are shadowed in a linker used only for instances with volumes. Each
//! wrapper asks the instance's [`Volumes`] first (`ENOSPC` past the quota, see [`crate::volume`]) and then runs
//! wasmtime-wasi's own implementation on the same guest memory and WASI context. `path_open`, `fd_renumber`
//! and `fd_close` are wrapped to track which volume each descriptor belongs to.
//!
//! Generic over the store's data ([`QuotaHost`]), so this module knows nothing of the runtime that uses it.

use wasmtime::{Caller, Linker};
use wasmtime_wasi::p1::WasiP1Ctx;

use crate::volume::{Volumes, ENOTSUP};

const WASI: &str = edge_engine::wasi::WASI_P1;

/// What the shim needs from a store's data: the WASI context the real calls run on, and the volumes, if any.
pub trait QuotaHost: Send + 'static {
    fn wasi(&mut self) -> &mut WasiP1Ctx;
    /// `None` for an instance without volumes (the shim then only forwards).
    fn volumes(&mut self) -> Option<&mut Volumes>;
}

/// Sum of the lengths of `n` iovecs at `iovs` in the guest's memory (0 if they cannot be read: the real call
/// then reports the fault).
fn iovec_total<T>(caller: &mut Caller<'_, T>, iovs: i32, n: i32) -> u64 {
    let Some(memory) = caller.get_export("memory").and_then(|e| e.into_memory()) else { return 0 };
    let data = memory.data(&*caller);
    let mut total = 0u64;
    for i in 0..(n.max(0) as usize).min(1024) {
        let at = iovs as u32 as usize + i * 8 + 4;
        let Some(b) = data.get(at..at + 4) else { return total };
        total += u64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    }
    total
}

fn reserve<T: QuotaHost>(caller: &mut Caller<'_, T>, fd: i32, bytes: u64) -> Result<(), i32> {
    match caller.data_mut().volumes() {
        Some(v) if fd >= 0 => v.reserve(fd as u32, bytes),
        _ => Ok(()),
    }
}

/// Runs wasmtime-wasi's own implementation of `$f` on the caller's memory and WASI context, exactly as the
/// linker's binding does (calling the linked function instead would lose the caller's memory).
macro_rules! wasi_call {
    ($caller:expr, $f:ident, $($await:ident)? ($($arg:expr),*)) => {{
        let Some(memory) = $caller.get_export("memory").and_then(|e| e.into_memory()) else {
            return Err(wasmtime::format_err!("missing required memory export"));
        };
        let fuel = wasmtime::AsContextMut::as_context_mut(&mut $caller).hostcall_fuel();
        let (mem, ctx) = memory.data_and_store_mut(&mut $caller);
        // The generated binding sets the per-call copy budget before every call; so must we.
        wasmtime_wasi::p1::wasi_snapshot_preview1::WasiSnapshotPreview1::set_hostcall_fuel(ctx.wasi(), fuel);
        let mut mem = wiggle::GuestMemory::Unshared(mem);
        wasmtime_wasi::p1::wasi_snapshot_preview1::$f(ctx.wasi(), &mut mem, $($arg),*)$(.$await)?
    }};
}

/// Shadows the WASI calls that can grow a file with quota checks, and tracks which volume each descriptor
/// belongs to. Each wrapper then runs wasmtime-wasi's implementation on the same memory and context.
pub fn add_to_linker<T: QuotaHost>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    linker.func_wrap_async(WASI, "fd_write", |mut c: Caller<'_, T>, (fd, iovs, n, out): (i32, i32, i32, i32)| {
        Box::new(async move {
            let bytes = iovec_total(&mut c, iovs, n);
            if let Err(errno) = reserve(&mut c, fd, bytes) {
                return Ok(errno);
            }
            Ok(wasi_call!(c, fd_write, await (fd, iovs, n, out))?)
        })
    })?;
    linker.func_wrap_async(
        WASI,
        "fd_pwrite",
        |mut c: Caller<'_, T>, (fd, iovs, n, offset, out): (i32, i32, i32, i64, i32)| {
            Box::new(async move {
                let bytes = iovec_total(&mut c, iovs, n);
                if let Err(errno) = reserve(&mut c, fd, bytes) {
                    return Ok(errno);
                }
                Ok(wasi_call!(c, fd_pwrite, await (fd, iovs, n, offset, out))?)
            })
        },
    )?;
    linker.func_wrap(WASI, "fd_allocate", |mut c: Caller<'_, T>, fd: i32, offset: i64, len: i64| {
        if let Err(errno) = reserve(&mut c, fd, len.max(0) as u64) {
            return Ok(errno);
        }
        Ok(wasi_call!(c, fd_allocate, (fd, offset, len))?)
    })?;
    linker.func_wrap_async(WASI, "fd_filestat_set_size", |mut c: Caller<'_, T>, (fd, size): (i32, i64)| {
        Box::new(async move {
            if let Err(errno) = reserve(&mut c, fd, size.max(0) as u64) {
                return Ok(errno);
            }
            Ok(wasi_call!(c, fd_filestat_set_size, await (fd, size))?)
        })
    })?;
    linker.func_wrap_async(
        WASI,
        "path_open",
        |mut c: Caller<'_, T>, a: (i32, i32, i32, i32, i32, i64, i64, i32, i32)| {
            Box::new(async move {
                let errno = wasi_call!(c, path_open, await (a.0, a.1, a.2, a.3, a.4, a.5, a.6, a.7, a.8))?;
                if errno == 0 {
                    let opened = read_u32(&mut c, a.8);
                    if let (Some(opened), Some(v)) = (opened, c.data_mut().volumes()) {
                        v.opened(a.0 as u32, opened);
                    }
                }
                Ok(errno)
            })
        },
    )?;
    linker.func_wrap_async(WASI, "fd_renumber", |mut c: Caller<'_, T>, (from, to): (i32, i32)| {
        Box::new(async move {
            // Renumbering onto stdout/stderr would let file writes pass as output (and the reverse).
            if from < 3 || to < 3 {
                return Ok(ENOTSUP);
            }
            let errno = wasi_call!(c, fd_renumber, await (from, to))?;
            if errno == 0 {
                if let Some(v) = c.data_mut().volumes() {
                    v.renumbered(from as u32, to as u32);
                }
            }
            Ok(errno)
        })
    })?;
    linker.func_wrap_async(WASI, "fd_close", |mut c: Caller<'_, T>, (fd,): (i32,)| {
        Box::new(async move {
            let errno = wasi_call!(c, fd_close, await (fd))?;
            if errno == 0 {
                if let Some(v) = c.data_mut().volumes() {
                    v.closed(fd as u32);
                }
            }
            Ok(errno)
        })
    })?;
    Ok(())
}

fn read_u32<T>(caller: &mut Caller<'_, T>, at: i32) -> Option<u32> {
    let memory = caller.get_export("memory")?.into_memory()?;
    let at = at as u32 as usize;
    let b = memory.data(&*caller).get(at..at + 4)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}
