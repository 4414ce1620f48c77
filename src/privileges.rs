//! Least privilege for `tapspan live` (Linux): once the capture handle is open, give up what
//! opening it needed, and everything else.
//!
//! Contract: [`Target::lookup`] resolves `--user NAME` to its uid, primary gid and supplementary
//! groups (the system's user database, as `initgroups` would) and refuses a target that would
//! keep root's reach: uid 0, primary gid 0, or group 0 among its groups. [`drop_privileges`]
//! then, in this order: clears the ambient capabilities; empties the bounding set when it may
//! (it needs CAP_SETPCAP, which root has and a binary given only `cap_net_raw,cap_net_admin`
//! has not); switches to the target when there is one (supplementary groups, then gid, then
//! uid); clears the effective, permitted and inheritable sets; sets `no_new_privs`, so no later
//! `execve` can gain a privilege from a file capability or a set-id bit (which also makes a
//! bounding set that could not be emptied harmless). It then checks the result instead of
//! trusting the calls: the capability sets read back empty, real/effective/saved uid and gid
//! and the group list are exactly the target's with no 0 among them, and `setuid(0)` and
//! `setgid(0)` both fail.
//!
//! It must run while the process has one thread: Linux keeps capabilities per thread, and
//! `capset`/`prctl` change only the caller's (glibc applies set*id calls to every thread; it
//! has no such help for capabilities). It counts `/proc/self/task` and refuses otherwise,
//! before changing anything.
//!
//! Unsafe code: one of the two modules allowed it (the other is the libpcap source in
//! `tapspan-capture`), because these system calls (`getpwnam_r`, `getgrouplist`, `setgroups`,
//! `setgid`, `setuid`, `prctl`, `capget`/`capset`) have no safe wrapper in std. Each call
//! passes plain integers or pointers to buffers owned by the calling frame.
//!
//! Never: runs for root without `--user` (the caller warns instead: root keeps what it has),
//! retries, or leaves a half-done switch running — every error is returned for the caller to
//! exit on.

use std::ffi::CString;
use std::io;

use libc::{c_int, c_ulong, gid_t, uid_t};

/// Why privileges could not be given up as asked.
#[derive(Debug, thiserror::Error)]
pub enum PrivilegeError {
    #[error("no such user")]
    NoSuchUser,
    #[error("a user name cannot contain a NUL byte")]
    NulInName,
    #[error("that user is root: nothing would be dropped")]
    Root,
    #[error("its primary group is 0 (root's group): refusing to run with root's group")]
    RootPrimaryGroup,
    #[error("it is a member of group 0 (root's group): refusing to run with root's group")]
    RootGroupMember,
    #[error("{call}: {source}")]
    Call {
        call: &'static str,
        source: io::Error,
    },
    #[error(
        "{0} threads are running: capabilities must be dropped while the process has one \
(a bug in tapspan)"
    )]
    Threads(usize),
    #[error("privileges were not dropped as asked: {0}")]
    Check(String),
}

/// The user `--user` names, resolved before anything is changed.
#[derive(Clone, Debug)]
pub struct Target {
    pub name: String,
    pub uid: uid_t,
    pub gid: gid_t,
    /// Supplementary groups, sorted, without duplicates; the primary gid is among them.
    pub groups: Vec<gid_t>,
}

/// Whether the effective uid is root's.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Refuses a target that would keep root's uid or root's group.
pub fn refuse_root(uid: uid_t, gid: gid_t, groups: &[gid_t]) -> Result<(), PrivilegeError> {
    if uid == 0 {
        Err(PrivilegeError::Root)
    } else if gid == 0 {
        Err(PrivilegeError::RootPrimaryGroup)
    } else if groups.contains(&0) {
        Err(PrivilegeError::RootGroupMember)
    } else {
        Ok(())
    }
}

fn os_error(call: &'static str) -> PrivilegeError {
    PrivilegeError::Call {
        call,
        source: io::Error::last_os_error(),
    }
}

impl Target {
    /// Looks `user` up and refuses root, group 0 as primary group, or group 0 among its groups.
    pub fn lookup(user: &str) -> Result<Target, PrivilegeError> {
        let name = CString::new(user).map_err(|_| PrivilegeError::NulInName)?;
        // SAFETY: passwd is plain data (integers and pointers); getpwnam_r fills it with
        // pointers into `buf`, which outlives every read of `pwd` below.
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut buf = vec![0 as libc::c_char; 1 << 16];
        let mut found: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: every pointer is to a live buffer of the stated length owned by this frame.
        let rc = unsafe {
            libc::getpwnam_r(
                name.as_ptr(),
                &mut pwd,
                buf.as_mut_ptr(),
                buf.len(),
                &mut found,
            )
        };
        if rc != 0 {
            return Err(PrivilegeError::Call {
                call: "getpwnam_r",
                source: io::Error::from_raw_os_error(rc),
            });
        }
        if found.is_null() {
            return Err(PrivilegeError::NoSuchUser);
        }
        let (uid, gid) = (pwd.pw_uid, pwd.pw_gid);
        let groups = group_list(&name, gid)?;
        refuse_root(uid, gid, &groups)?;
        Ok(Target {
            name: user.to_string(),
            uid,
            gid,
            groups,
        })
    }
}

/// `user`'s groups (the primary one included), sorted and deduplicated.
fn group_list(user: &CString, gid: gid_t) -> Result<Vec<gid_t>, PrivilegeError> {
    let mut room: c_int = 64;
    loop {
        let mut groups = vec![0 as gid_t; room as usize];
        let mut count = room;
        // SAFETY: `groups` holds `count` entries; getgrouplist writes at most that many and
        // sets `count` to how many there are (more than room when -1 is returned).
        let rc = unsafe { libc::getgrouplist(user.as_ptr(), gid, groups.as_mut_ptr(), &mut count) };
        if rc >= 0 {
            groups.truncate(count.max(0) as usize);
            groups.sort_unstable();
            groups.dedup();
            return Ok(groups);
        }
        if room >= 1 << 16 {
            return Err(PrivilegeError::Check(
                "the user is in more than 65536 groups".into(),
            ));
        }
        room = count.clamp(room.saturating_mul(2), 1 << 16);
    }
}

/// What [`drop_privileges`] managed beyond the checked minimum.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dropped {
    /// Whether the bounding set was emptied (it needs CAP_SETPCAP).
    pub bounding_cleared: bool,
}

/// Gives up every capability and, with a target, root: see the module's contract.
pub fn drop_privileges(target: Option<&Target>) -> Result<Dropped, PrivilegeError> {
    let threads = std::fs::read_dir("/proc/self/task").map_or(1, |d| d.count());
    if threads > 1 {
        return Err(PrivilegeError::Threads(threads));
    }
    // Kernels before 4.3 have no ambient set (EINVAL): nothing to clear there.
    if prctl(
        libc::PR_CAP_AMBIENT,
        libc::PR_CAP_AMBIENT_CLEAR_ALL as c_ulong,
    ) != 0
        && io::Error::last_os_error().raw_os_error() != Some(libc::EINVAL)
    {
        return Err(os_error("prctl(PR_CAP_AMBIENT_CLEAR_ALL)"));
    }
    // The bounding set goes first: emptying it needs CAP_SETPCAP, which the switch loses.
    let bounding_cleared = capget()?.effective & (1 << CAP_SETPCAP) != 0;
    if bounding_cleared {
        for cap in bounding_set() {
            if prctl(libc::PR_CAPBSET_DROP, cap) != 0 {
                return Err(os_error("prctl(PR_CAPBSET_DROP)"));
            }
        }
    }
    if let Some(t) = target {
        switch_to(t)?;
    }
    capset(Caps::default())?;
    if prctl(libc::PR_SET_NO_NEW_PRIVS, 1) != 0 {
        return Err(os_error("prctl(PR_SET_NO_NEW_PRIVS)"));
    }
    check_dropped(target, bounding_cleared)?;
    Ok(Dropped { bounding_cleared })
}

fn switch_to(t: &Target) -> Result<(), PrivilegeError> {
    // SAFETY: `t.groups` is a live slice of that many gids; setgid/setuid take integers.
    unsafe {
        if libc::setgroups(t.groups.len(), t.groups.as_ptr()) != 0 {
            return Err(os_error("setgroups"));
        }
        if libc::setgid(t.gid) != 0 {
            return Err(os_error("setgid"));
        }
        if libc::setuid(t.uid) != 0 {
            return Err(os_error("setuid"));
        }
    }
    Ok(())
}

/// Reads back what was dropped; an error names the first thing still held.
fn check_dropped(target: Option<&Target>, bounding_cleared: bool) -> Result<(), PrivilegeError> {
    let held = |what: &str| Err(PrivilegeError::Check(what.to_string()));
    let caps = capget()?;
    if caps != Caps::default() {
        return held(&format!("capabilities still held: {caps:?}"));
    }
    if bounding_cleared && bounding_set().next().is_some() {
        return held("the bounding set is not empty");
    }
    if prctl(libc::PR_GET_NO_NEW_PRIVS, 0) != 1 {
        return held("no_new_privs is not set");
    }
    let Some(t) = target else { return Ok(()) };
    let (mut r, mut e, mut s) = (0, 0, 0);
    // SAFETY: three live out-parameters owned by this frame.
    if unsafe { libc::getresuid(&mut r, &mut e, &mut s) } != 0 {
        return Err(os_error("getresuid"));
    }
    if [r, e, s] != [t.uid; 3] {
        return held(&format!(
            "uids (real, effective, saved) are {r}, {e}, {s}, not {}",
            t.uid
        ));
    }
    // SAFETY: as above.
    if unsafe { libc::getresgid(&mut r, &mut e, &mut s) } != 0 {
        return Err(os_error("getresgid"));
    }
    if [r, e, s] != [t.gid; 3] {
        return held(&format!(
            "gids (real, effective, saved) are {r}, {e}, {s}, not {}",
            t.gid
        ));
    }
    let groups = current_groups()?;
    if groups != t.groups || groups.contains(&0) {
        return held(&format!(
            "groups are {groups:?}, not {}'s {:?}",
            t.name, t.groups
        ));
    }
    // SAFETY: plain system calls on integers; success here is the failure being checked for.
    if unsafe { libc::setuid(0) } == 0 {
        return held("root could be regained (setuid 0 succeeded)");
    }
    // SAFETY: as above.
    if unsafe { libc::setgid(0) } == 0 {
        return held("group 0 could be regained (setgid 0 succeeded)");
    }
    Ok(())
}

/// The supplementary groups now in force, sorted and deduplicated.
fn current_groups() -> Result<Vec<gid_t>, PrivilegeError> {
    // SAFETY: a count of 0 with a null list only asks how many there are.
    let n = unsafe { libc::getgroups(0, std::ptr::null_mut()) };
    if n < 0 {
        return Err(os_error("getgroups"));
    }
    let mut groups = vec![0 as gid_t; n as usize];
    // SAFETY: `groups` holds `n` entries, the most getgroups is told it may write.
    let n = unsafe { libc::getgroups(n, groups.as_mut_ptr()) };
    if n < 0 {
        return Err(os_error("getgroups"));
    }
    groups.truncate(n as usize);
    groups.sort_unstable();
    groups.dedup();
    Ok(groups)
}

/// `prctl(option, arg2, 0, 0, 0)`. Every argument is passed as an unsigned long: the kernel
/// reads whole registers, and some options refuse nonzero unused arguments.
fn prctl(option: c_int, arg2: c_ulong) -> c_int {
    // SAFETY: the options used here take integers only.
    unsafe { libc::prctl(option, arg2, 0 as c_ulong, 0 as c_ulong, 0 as c_ulong) }
}

/// The capabilities still in this thread's bounding set.
fn bounding_set() -> impl Iterator<Item = c_ulong> {
    // PR_CAPBSET_READ fails (EINVAL) past the kernel's last capability.
    (0..64)
        .map(|cap| (cap, prctl(libc::PR_CAPBSET_READ, cap)))
        .take_while(|&(_, r)| r >= 0)
        .filter(|&(_, r)| r == 1)
        .map(|(cap, _)| cap)
}

const CAP_SETPCAP: u32 = 8;
/// `_LINUX_CAPABILITY_VERSION_3`: 64-bit sets, as two 32-bit halves.
const CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// One thread's capability sets, as bit masks of capability numbers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Caps {
    effective: u64,
    permitted: u64,
    inheritable: u64,
}

/// The kernel's `__user_cap_header_struct`.
#[repr(C)]
struct CapHeader {
    version: u32,
    pid: c_int,
}

/// The kernel's `__user_cap_data_struct`; version 3 takes two (low and high 32 bits).
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

fn capget() -> Result<Caps, PrivilegeError> {
    let mut header = CapHeader {
        version: CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: a version-3 header and the two data structs that version reads and writes, all
    // owned by this frame; pid 0 is the calling thread.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_capget,
            &mut header as *mut CapHeader,
            data.as_mut_ptr(),
        )
    };
    if rc != 0 {
        return Err(os_error("capget"));
    }
    let join = |f: fn(&CapData) -> u32| u64::from(f(&data[0])) | u64::from(f(&data[1])) << 32;
    Ok(Caps {
        effective: join(|d| d.effective),
        permitted: join(|d| d.permitted),
        inheritable: join(|d| d.inheritable),
    })
}

fn capset(caps: Caps) -> Result<(), PrivilegeError> {
    let mut header = CapHeader {
        version: CAPABILITY_VERSION_3,
        pid: 0,
    };
    let split = |v: u64| [v as u32, (v >> 32) as u32];
    let (e, p, i) = (
        split(caps.effective),
        split(caps.permitted),
        split(caps.inheritable),
    );
    let data = [0, 1].map(|k| CapData {
        effective: e[k],
        permitted: p[k],
        inheritable: i[k],
    });
    // SAFETY: as in capget; capset only reads `data`.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_capset,
            &mut header as *mut CapHeader,
            data.as_ptr(),
        )
    };
    if rc != 0 {
        return Err(os_error("capset"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_uid_root_group_and_membership_of_group_0_are_refused() {
        assert!(matches!(refuse_root(0, 5, &[5]), Err(PrivilegeError::Root)));
        assert!(matches!(
            refuse_root(1000, 0, &[0]),
            Err(PrivilegeError::RootPrimaryGroup)
        ));
        assert!(matches!(
            refuse_root(1000, 1000, &[0, 27, 1000]),
            Err(PrivilegeError::RootGroupMember)
        ));
        assert!(refuse_root(65534, 65534, &[65534]).is_ok());
    }

    #[test]
    fn a_user_with_no_entry_is_refused_by_name() {
        let e = Target::lookup("tapspan-no-such-user-x9").unwrap_err();
        assert!(matches!(e, PrivilegeError::NoSuchUser), "{e}");
        assert!(matches!(
            Target::lookup("a\0b"),
            Err(PrivilegeError::NulInName)
        ));
    }

    /// With another thread running, nothing is changed: this test process keeps its
    /// capabilities (and, as root, its uid).
    #[test]
    fn refuses_while_other_threads_run_and_changes_nothing() {
        let before = (capget().unwrap(), prctl(libc::PR_GET_NO_NEW_PRIVS, 0));
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let other = std::thread::spawn(move || rx.recv());
        let e = drop_privileges(None).unwrap_err();
        drop(tx);
        let _ = other.join();
        assert!(matches!(e, PrivilegeError::Threads(n) if n >= 2), "{e}");
        let after = (capget().unwrap(), prctl(libc::PR_GET_NO_NEW_PRIVS, 0));
        assert_eq!(after, before);
    }
}
