//! `edgectl flash`: customise a Raspberry Pi OS image (or a card) so that the board joins the cluster on first
//! boot, writing into the image's FAT boot partition in-process (no mount, no root, no loop device), as
//! rpi-imager itself does.
//!
//! Layout: `mbr.rs` finds the boot partition in the partition table, `elf.rs` reads an agent binary's
//! architecture from its ELF header, `recipe.rs` generates every file written (agent.toml, cloud-init or
//! firstrun.sh, the edited `cmdline.txt`) — all three pure — and `image.rs` is the FAT I/O on the boot partition.
//! `device.rs` holds the checks before a card is overwritten. The command itself is `cmd/flash.rs`.

pub mod device;
pub mod elf;
pub mod image;
pub mod mbr;
pub mod recipe;
