//! Which HDF5 API the crate compiles against: the system library (Debian's 1.10) or the
//! one built from source for self-contained wheels (2.x, without the deprecated symbols).
//! hdf5-metno-sys reports every version the library reaches as `DEP_HDF5_VERSION_x_y_z`.

fn main() {
    for (cfg, version) in [("hdf5_1_12", "1_12_0"), ("hdf5_2", "2_0_0")] {
        println!("cargo::rustc-check-cfg=cfg({cfg})");
        if std::env::var_os(format!("DEP_HDF5_VERSION_{version}")).is_some() {
            println!("cargo::rustc-cfg={cfg}");
        }
    }
}
