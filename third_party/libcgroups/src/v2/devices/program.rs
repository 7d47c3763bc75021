use oci_spec::runtime::*;
use rbpf::disassembler::disassemble;
use rbpf::insn_builder::{Arch as RbpfArch, *};

// PATCH (runtime, see third_party/README.md): the program is built from the rules
// crate::device_rules computes (runc's semantics), and the constants of
// include/uapi/linux/bpf.h are spelled here instead of taken from libbpf-sys.
use crate::device_rules::{Access, Kind, Write};

const BPF_DEVCG_ACC_MKNOD: u32 = 1;
const BPF_DEVCG_ACC_READ: u32 = 2;
const BPF_DEVCG_ACC_WRITE: u32 = 4;
const BPF_DEVCG_DEV_BLOCK: u32 = 1;
const BPF_DEVCG_DEV_CHAR: u32 = 2;

pub struct Program {
    prog: BpfCode,
}

#[derive(thiserror::Error, Debug)]
pub enum ProgramError {
    #[error("io error: {0}")]
    Io(#[from] std::io::Error),
    #[error("invalid access: {0}")]
    InvalidAccess(char),
    #[error("{0} device not supported")]
    DeviceNotSupported(&'static str),
    #[error("wildcard device type should be removed when cleaning rules")]
    WildcardDevice,
}

impl Program {
    /// `rules` are exceptions to `default_allow` (crate::device_rules::Emulator::rules).
    pub fn from_rules(rules: &[Write], default_allow: bool) -> Result<Self, ProgramError> {
        let mut prog = Program {
            prog: BpfCode::new(),
        };
        prog.init();

        for rule in rules.iter().rev() {
            prog.add_rule(rule)?;
        }
        prog.finalize(default_allow);
        Ok(prog)
    }

    pub fn bytecodes(&self) -> &[u8] {
        self.prog.into_bytes()
    }

    fn finalize(&mut self, default_allow: bool) {
        self.prog
            .mov(Source::Imm, RbpfArch::X32)
            .set_dst(0)
            .set_imm(default_allow as i32)
            .push();

        self.prog.exit().push();
    }

    // struct bpf_cgroup_dev_ctx: https://elixir.bootlin.com/linux/v5.3.6/source/include/uapi/linux/bpf.h#L3423
    /*
    u32 access_type
    u32 major
    u32 minor
    */
    // R2 <- type (lower 16 bit of u32 access_type at R1[0])
    // R3 <- access (upper 16 bit of u32 access_type at R1[0])
    // R4 <- major (u32 major at R1[4])
    // R5 <- minor (u32 minor at R1[8])
    fn init(&mut self) {
        self.prog
            .load_x(MemSize::Word)
            .set_src(1)
            .set_off(0)
            .set_dst(2)
            .push();

        self.prog
            .bit_and(Source::Imm, RbpfArch::X32)
            .set_dst(2)
            .set_imm(0xFFFF)
            .push();

        self.prog
            .load_x(MemSize::Word)
            .set_src(1)
            .set_off(0)
            .set_dst(3)
            .push();

        self.prog
            .right_shift(Source::Imm, RbpfArch::X32)
            .set_imm(16)
            .set_dst(3)
            .push();

        self.prog
            .load_x(MemSize::Word)
            .set_src(1)
            .set_off(4)
            .set_dst(4)
            .push();

        self.prog
            .load_x(MemSize::Word)
            .set_src(1)
            .set_off(8)
            .set_dst(5)
            .push();
    }

    fn add_rule(&mut self, rule: &Write) -> Result<(), ProgramError> {
        let target = rule.target.ok_or(ProgramError::WildcardDevice)?;
        let dev_type = match target.kind {
            Kind::Block => BPF_DEVCG_DEV_BLOCK,
            Kind::Char => BPF_DEVCG_DEV_CHAR,
        };
        let access = bpf_access_bits(rule.access);
        let has_access = access != (BPF_DEVCG_ACC_READ | BPF_DEVCG_ACC_WRITE | BPF_DEVCG_ACC_MKNOD);

        let has_major = target.major.is_some();
        let has_minor = target.minor.is_some();

        // count of instructions of this rule
        let mut instruction_count = 1; // execute dev_type
        if has_access {
            instruction_count += 3;
        }
        if has_major {
            instruction_count += 1;
        }
        if has_minor {
            instruction_count += 1;
        }
        instruction_count += 2;

        // if (R2 != dev_type) goto next rule
        let mut next_rule_offset = instruction_count - 1;
        self.prog
            .jump_conditional(Cond::NotEquals, Source::Imm)
            .set_dst(2)
            .set_imm(dev_type as i32)
            .set_off(next_rule_offset)
            .push();

        if has_access {
            next_rule_offset -= 3;
            // if (R3 & access != R3 /* use R1 as a temp var */) goto next rule
            self.prog
                .mov(Source::Reg, RbpfArch::X32)
                .set_dst(1)
                .set_src(3)
                .push();

            self.prog
                .bit_and(Source::Imm, RbpfArch::X32)
                .set_dst(1)
                .set_imm(access as i32)
                .push();

            self.prog
                .jump_conditional(Cond::NotEquals, Source::Reg)
                .set_dst(1)
                .set_src(3)
                .set_off(next_rule_offset)
                .push();
        }

        if has_major {
            next_rule_offset -= 1;
            // if (R4 != major) goto next rule
            self.prog
                .jump_conditional(Cond::NotEquals, Source::Imm)
                .set_dst(4)
                .set_imm(target.major.unwrap_or_default() as i32)
                .set_off(next_rule_offset)
                .push();
        }

        if has_minor {
            next_rule_offset -= 1;
            // if (R5 != minor) goto next rule
            self.prog
                .jump_conditional(Cond::NotEquals, Source::Imm)
                .set_dst(5)
                .set_imm(target.minor.unwrap_or_default() as i32)
                .set_off(next_rule_offset)
                .push();
        }

        // matched, return rule.allow
        self.prog
            .mov(Source::Imm, RbpfArch::X32)
            .set_dst(0)
            .set_imm(rule.allow as i32)
            .push();
        self.prog.exit().push();

        Ok(())
    }

    pub fn dump(&self) {
        disassemble(self.prog.into_bytes());
    }

    pub fn execute(
        &self,
        typ: LinuxDeviceType,
        major: u32,
        minor: u32,
        access: String,
    ) -> Result<u64, ProgramError> {
        let mut mem = bpf_cgroup_dev_ctx(typ, major, minor, access)?;
        let vm = rbpf::EbpfVmRaw::new(Some(self.prog.into_bytes()))?;
        let result = vm.execute_program(&mut mem[..])?;
        Ok(result)
    }
}

fn bpf_dev_type(typ: LinuxDeviceType) -> Result<u32, ProgramError> {
    let dev_type: u32 = match typ {
        LinuxDeviceType::C => BPF_DEVCG_DEV_CHAR,
        LinuxDeviceType::U => return Err(ProgramError::DeviceNotSupported("unbuffered char")),
        LinuxDeviceType::B => BPF_DEVCG_DEV_BLOCK,
        LinuxDeviceType::P => return Err(ProgramError::DeviceNotSupported("pipe device")),
        LinuxDeviceType::A => return Err(ProgramError::WildcardDevice),
    };
    Ok(dev_type)
}

/// The program's access bits for r/w/m.
fn bpf_access_bits(access: Access) -> u32 {
    let mut v = 0;
    if access.bits() & Access::READ.bits() != 0 {
        v |= BPF_DEVCG_ACC_READ;
    }
    if access.bits() & Access::WRITE.bits() != 0 {
        v |= BPF_DEVCG_ACC_WRITE;
    }
    if access.bits() & Access::MKNOD.bits() != 0 {
        v |= BPF_DEVCG_ACC_MKNOD;
    }
    v
}

fn bpf_access(access: String) -> Result<u32, ProgramError> {
    let mut v = 0_u32;
    for c in access.chars() {
        let cur_access = match c {
            'r' => BPF_DEVCG_ACC_READ,
            'w' => BPF_DEVCG_ACC_WRITE,
            'm' => BPF_DEVCG_ACC_MKNOD,
            _ => return Err(ProgramError::InvalidAccess(c)),
        };
        v |= cur_access;
    }
    Ok(v)
}

fn bpf_cgroup_dev_ctx(
    typ: LinuxDeviceType,
    major: u32,
    minor: u32,
    access: String,
) -> Result<Vec<u8>, ProgramError> {
    let mut mem = Vec::with_capacity(12);

    let mut type_access = 0_u32;
    if let Ok(t) = bpf_dev_type(typ) {
        type_access = t & 0xFFFF;
    }

    type_access |= bpf_access(access)? << 16;

    mem.extend_from_slice(&type_access.to_ne_bytes());
    mem.extend_from_slice(&major.to_ne_bytes());
    mem.extend_from_slice(&minor.to_ne_bytes());

    Ok(mem)
}

#[cfg(test)]
mod tests {
    use anyhow::Result;
    use oci_spec::runtime::LinuxDeviceCgroupBuilder;

    use super::*;
    use crate::device_rules::Emulator;

    /// The program for a container whose config lists `rules` (deny-all, the rules,
    /// runc's defaults), or for exactly `rules` on a deny-all start when `bare`.
    fn program(rules: Vec<LinuxDeviceCgroup>, bare: bool) -> Result<Program> {
        let em = if bare {
            let mut em = Emulator::deny_all();
            for r in &rules {
                em.apply(r)?;
            }
            em
        } else {
            Emulator::for_container(&rules)?
        };
        Ok(Program::from_rules(&em.rules(), em.default_allow())?)
    }

    fn rule(
        allow: bool,
        typ: LinuxDeviceType,
        major: i64,
        minor: i64,
        access: &str,
    ) -> LinuxDeviceCgroup {
        let mut b = LinuxDeviceCgroupBuilder::default()
            .allow(allow)
            .typ(typ)
            .access(access);
        if major >= 0 {
            b = b.major(major);
        }
        if minor >= 0 {
            b = b.minor(minor);
        }
        b.build().unwrap()
    }

    fn allows(p: &Program, typ: LinuxDeviceType, major: u32, minor: u32, access: &str) -> bool {
        p.execute(typ, major, minor, access.to_string()).unwrap() == 1
    }

    #[test]
    fn a_container_with_no_rules_gets_runcs_defaults_only() {
        let p = program(vec![], false).unwrap();
        // the attack of issue 12: mknod c 10 229 (fuse) is allowed, opening it is not
        assert!(allows(&p, LinuxDeviceType::C, 10, 229, "m"));
        assert!(!allows(&p, LinuxDeviceType::C, 10, 229, "r"));
        assert!(!allows(&p, LinuxDeviceType::C, 10, 229, "w"));
        assert!(!allows(&p, LinuxDeviceType::B, 8, 0, "r"));
        assert!(allows(&p, LinuxDeviceType::B, 8, 0, "m"));
        for (major, minor) in [
            (1, 3),
            (1, 5),
            (1, 7),
            (1, 8),
            (1, 9),
            (5, 0),
            (5, 2),
            (136, 4),
            (10, 200),
        ] {
            for a in ["r", "w", "m"] {
                assert!(
                    allows(&p, LinuxDeviceType::C, major, minor, a),
                    "{major}:{minor} {a}"
                );
            }
        }
        // not runc's: /dev/console 5:1 of the host, /dev/kmsg
        assert!(!allows(&p, LinuxDeviceType::C, 5, 1, "w"));
        assert!(!allows(&p, LinuxDeviceType::C, 1, 11, "r"));
    }

    #[test]
    fn an_allow_all_config_allows_all_but_its_denies() {
        let p = program(
            vec![
                rule(true, LinuxDeviceType::A, -1, -1, "rwm"),
                rule(false, LinuxDeviceType::C, 10, 229, "rwm"),
            ],
            false,
        )
        .unwrap();
        assert!(!allows(&p, LinuxDeviceType::C, 10, 229, "r"));
        assert!(allows(&p, LinuxDeviceType::C, 10, 228, "r"));
        assert!(allows(&p, LinuxDeviceType::B, 8, 0, "w"));
    }

    #[test]
    fn exact_and_wildcard_rules() {
        let p = program(vec![rule(true, LinuxDeviceType::C, 10, 20, "r")], true).unwrap();
        assert!(allows(&p, LinuxDeviceType::C, 10, 20, "r"));
        assert!(!allows(&p, LinuxDeviceType::C, 10, 20, "w"));
        assert!(!allows(&p, LinuxDeviceType::C, 10, 21, "r"));
        assert!(!allows(&p, LinuxDeviceType::B, 10, 20, "r"));
        let p = program(vec![rule(true, LinuxDeviceType::C, -1, 20, "rw")], true).unwrap();
        assert!(allows(&p, LinuxDeviceType::C, 99, 20, "w"));
        assert!(!allows(&p, LinuxDeviceType::C, 99, 21, "w"));
        assert!(!allows(&p, LinuxDeviceType::C, 99, 20, "m"));
        let p = program(vec![], true).unwrap();
        assert!(!allows(&p, LinuxDeviceType::C, 1, 3, "r"));
    }
}
