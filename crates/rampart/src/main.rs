//! `rampart`: the Rampart secure email gateway appliance.

// mimalloc instead of glibc's malloc, for speed at the same memory: see rampart-alloc.
#[global_allocator]
static GLOBAL: rampart_alloc::Allocator = rampart_alloc::ALLOCATOR;

fn main() -> std::process::ExitCode {
    rampart_alloc::return_freed_memory_at_once();
    rampart::main()
}
