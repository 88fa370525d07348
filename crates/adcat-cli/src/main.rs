//! `adcat`: concatenate and convert AnnData stores (.h5ad, .zarr) out of core.

// Blocks of tens of MiB are allocated and freed for every element; mimalloc keeps freed
// pages for reuse where glibc returns them to the kernel and faults them back in.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    // `adcat inspect s.zarr | head`: a closed stdout ends the process quietly, as for
    // other Unix tools, instead of a panic in `println!` (Rust ignores SIGPIPE).
    // SAFETY: set before any thread starts; SIG_DFL is a valid disposition.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    std::process::exit(adcat_cli::run_main(std::env::args_os()));
}
