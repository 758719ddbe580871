//! `ethtool`: installed on every Ubuntu server (kubeadm's preflight only checks that it
//! is on PATH). Models `--version` and `-i IFACE`, which asks the host's real kernel for
//! the interface's driver (ETHTOOL_GDRVINFO), so a veth shows `driver: veth` as it
//! would on a real machine with one.

use crate::common::Ctx;

/// `ethtool --version | -i|--driver IFACE`.
pub fn ethtool(ctx: &mut Ctx, args: &[String]) -> i32 {
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    match a.as_slice() {
        ["--version"] | ["-V"] => {
            println!("ethtool version {}", upstream_version(&ctx.config.os));
            0
        }
        ["-i", iface] | ["--driver", iface] => match drvinfo(iface) {
            Ok(info) => {
                print!("{}", info.render());
                0
            }
            Err(e) => {
                eprintln!("Cannot get driver information: {}", perror_text(&e));
                71
            }
        },
        ["-i"] | ["--driver"] | [] => {
            eprintln!("ethtool: bad command line argument(s)\nFor more information run ethtool -h");
            1
        }
        _ => {
            eprintln!("ethtool: only --version and -i IFACE are modeled in the testbed");
            1
        }
    }
}

/// The upstream version of the OS's ethtool package ("1:6.7-1build1" -> "6.7").
fn upstream_version(os: &str) -> String {
    let v = crate::repo::catalog::distro(os)
        .into_iter()
        .find(|p| p.name == "ethtool")
        .map(|p| p.version)
        .unwrap_or_else(|| "1:6.7-1".into());
    let v = v.split_once(':').map(|x| x.1).unwrap_or(&v);
    v.rsplit_once('-').map(|x| x.0).unwrap_or(v).to_string()
}

/// What ETHTOOL_GDRVINFO reports.
#[derive(Debug, Default, PartialEq)]
struct DrvInfo {
    driver: String,
    version: String,
    fw_version: String,
    erom_version: String,
    bus_info: String,
    n_stats: u32,
    testinfo_len: u32,
    eedump_len: u32,
    regdump_len: u32,
    n_priv_flags: u32,
}

impl DrvInfo {
    /// ethtool's `dump_drvinfo` layout.
    fn render(&self) -> String {
        let yn = |n: u32| if n > 0 { "yes" } else { "no" };
        format!(
            "driver: {}\nversion: {}\nfirmware-version: {}\nexpansion-rom-version: {}\nbus-info: {}\nsupports-statistics: {}\nsupports-test: {}\nsupports-eeprom-access: {}\nsupports-register-dump: {}\nsupports-priv-flags: {}\n",
            self.driver,
            self.version,
            self.fw_version,
            self.erom_version,
            self.bus_info,
            yn(self.n_stats),
            yn(self.testinfo_len),
            yn(self.eedump_len),
            yn(self.regdump_len),
            yn(self.n_priv_flags),
        )
    }
}

/// `struct ethtool_drvinfo` from linux/ethtool.h.
#[repr(C)]
struct RawDrvInfo {
    cmd: u32,
    driver: [u8; 32],
    version: [u8; 32],
    fw_version: [u8; 32],
    bus_info: [u8; 32],
    erom_version: [u8; 32],
    reserved2: [u8; 12],
    n_priv_flags: u32,
    n_stats: u32,
    testinfo_len: u32,
    eedump_len: u32,
    regdump_len: u32,
}

const SIOCETHTOOL: libc::c_ulong = 0x8946;
const ETHTOOL_GDRVINFO: u32 = 0x0000_0003;

/// The text perror(3) prints for an error (no "(os error N)" suffix).
fn perror_text(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => unsafe { std::ffi::CStr::from_ptr(libc::strerror(n)) }
            .to_string_lossy()
            .into_owned(),
        None => e.to_string(),
    }
}

fn cstr(b: &[u8]) -> String {
    let end = b.iter().position(|c| *c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

/// Asks the kernel (the host's network namespace) for the interface's driver info.
fn drvinfo(iface: &str) -> Result<DrvInfo, std::io::Error> {
    if iface.len() >= libc::IFNAMSIZ {
        return Err(std::io::Error::from_raw_os_error(libc::ENODEV));
    }
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut raw: RawDrvInfo = unsafe { std::mem::zeroed() };
    raw.cmd = ETHTOOL_GDRVINFO;
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in ifr.ifr_name.iter_mut().zip(iface.bytes()) {
        *d = s as libc::c_char;
    }
    ifr.ifr_ifru.ifru_data = (&mut raw as *mut RawDrvInfo).cast();
    let r = unsafe { libc::ioctl(fd, SIOCETHTOOL as _, &mut ifr) };
    let err = std::io::Error::last_os_error();
    unsafe { libc::close(fd) };
    if r < 0 {
        return Err(err);
    }
    Ok(DrvInfo {
        driver: cstr(&raw.driver),
        version: cstr(&raw.version),
        fw_version: cstr(&raw.fw_version),
        erom_version: cstr(&raw.erom_version),
        bus_info: cstr(&raw.bus_info),
        n_stats: raw.n_stats,
        testinfo_len: raw.testinfo_len,
        eedump_len: raw.eedump_len,
        regdump_len: raw.regdump_len,
        n_priv_flags: raw.n_priv_flags,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_base_package_links_ethtool_where_ubuntu_has_it() {
        use crate::repo::catalog;
        assert!(catalog::BASE_PACKAGES.contains(&"ethtool"));
        assert_eq!(catalog::commands("ethtool"), &["ethtool"]);
        assert_eq!(catalog::command_dir("ethtool"), "/usr/sbin");
    }

    #[test]
    fn versions_and_layout() {
        assert_eq!(upstream_version("ubuntu-24.04"), "6.7");
        assert_eq!(upstream_version("ubuntu-22.04"), "5.16");
        assert_eq!(upstream_version("debian-12"), "6.1");
        let e = drvinfo("nosuchif0").unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENODEV));
        assert_eq!(perror_text(&e), "No such device");
        let r = DrvInfo {
            driver: "veth".into(),
            version: "1.0".into(),
            n_stats: 1,
            ..Default::default()
        }
        .render();
        assert!(r.starts_with("driver: veth\nversion: 1.0\nfirmware-version: \n"));
        assert!(r.contains("supports-statistics: yes\nsupports-test: no\n"));
    }
}
