//! The import surface of the agent's runtime: WASI preview 1 and nothing else. A module importing anything
//! outside it is refused at upload, naming what is missing, rather than failing on every node.

/// The module name of every import a guest may have.
pub const WASI_P1: &str = "wasi_snapshot_preview1";

/// Every function of `wasi_snapshot_preview1` the runtime links (wasmtime-wasi's `p1`). Sockets are linked but
/// the runtime preopens none, so they fail with `EBADF`.
pub const WASI_P1_FUNCTIONS: [&str; 46] = [
    "args_get",
    "args_sizes_get",
    "environ_get",
    "environ_sizes_get",
    "clock_res_get",
    "clock_time_get",
    "fd_advise",
    "fd_allocate",
    "fd_close",
    "fd_datasync",
    "fd_fdstat_get",
    "fd_fdstat_set_flags",
    "fd_fdstat_set_rights",
    "fd_filestat_get",
    "fd_filestat_set_size",
    "fd_filestat_set_times",
    "fd_pread",
    "fd_prestat_get",
    "fd_prestat_dir_name",
    "fd_pwrite",
    "fd_read",
    "fd_readdir",
    "fd_renumber",
    "fd_seek",
    "fd_sync",
    "fd_tell",
    "fd_write",
    "path_create_directory",
    "path_filestat_get",
    "path_filestat_set_times",
    "path_link",
    "path_open",
    "path_readlink",
    "path_remove_directory",
    "path_rename",
    "path_symlink",
    "path_unlink_file",
    "poll_oneoff",
    "proc_exit",
    "proc_raise",
    "sched_yield",
    "random_get",
    "sock_accept",
    "sock_recv",
    "sock_send",
    "sock_shutdown",
];

/// Whether the runtime provides the function `module::name`.
pub fn provides(module: &str, name: &str) -> bool {
    module == WASI_P1 && WASI_P1_FUNCTIONS.contains(&name)
}
