#!/usr/bin/python
# -*- coding: utf-8 -*-

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: sysctune
short_description: Tune Linux sysctls from a workload profile with sysctune
version_added: "0.1.0"
description:
  - Runs C(sysctune plan --format json) in check mode and C(sysctune apply --format json)
    otherwise, on the managed host.
  - C(apply) writes the sysctl.d drop-in atomically (only when its content changes) and
    applies the changed keys live, read back and verified, all or nothing; it records the
    previous values so that C(sysctune rollback) can restore them.
  - Reports C(changed) from sysctune's own JSON, so a second run on a converged host is
    not changed.
  - In diff mode returns two diffs in Ansible's form, shown by Ansible's diff callback
    (C(--diff)) - the drop-in file (its content on the host before, the content sysctune
    writes after) and the live values of the managed keys.
  - A plan with an C(error) finding fails the task with sysctune's message, in check
    mode too, unless O(force=true).
requirements:
  - The C(sysctune) binary on the managed host (see O(executable)).
author:
  - sysctune maintainers
options:
  profile:
    description:
      - A built-in profile name (V(reverse-proxy), V(batch-client), V(web-server),
        V(database)) or the path to a TOML profile on the managed host.
    type: str
    required: true
  set:
    description:
      - Profile fields to override, as a dictionary of dotted field paths to values; each
        becomes C(--set FIELD=VALUE). Values are TOML values; sizes may carry units
        (V(62GiB)).
    type: dict
    default: {}
  only:
    description:
      - Restrict the plan and the apply to keys matching these globs (C(--only)), for
        example V(net.ipv4.*) for a network namespace's own keys.
    type: list
    elements: str
    default: []
  dropin:
    description:
      - The drop-in file, as a path inside O(root). sysctune's default is
        C(/etc/sysctl.d/90-sysctune.conf).
    type: str
  root:
    description:
      - Filesystem root to read and write instead of C(/) (C(--root)), for images,
        chroots and tests.
    type: path
    default: /
  state_dir:
    description:
      - sysctune's state directory (lock, rollback record, what was applied), as a path
        inside O(root). sysctune's default is C(/var/lib/sysctune).
    type: str
  force:
    description:
      - Apply a plan sysctune would refuse (one with an error finding, or a value that
        would break the host now). Never overrides a profile's C([host]) section.
    type: bool
    default: false
  allow_keys:
    description:
      - Let the profile pin these dangerous keys (C(--allow-key)), such as
        C(kernel.core_pattern) with a pipe.
    type: list
    elements: str
    default: []
  executable:
    description:
      - The sysctune binary, a name looked up in C(PATH) or a path.
    type: path
    default: sysctune
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details: Check mode runs C(sysctune plan), which writes nothing.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: full
  platform:
    description: Target OS/families that can be operated against.
    support: full
    platforms: posix
notes:
  - Per-namespace keys (C(net.ipv4.ip_local_port_range), C(tcp_rmem), ...) set on a host
    do not reach the network namespaces of containers already running; see the
    C(scope) findings.
seealso:
  - module: sysctune.sysctune.sysctune_info
  - module: ansible.posix.sysctl
'''

EXAMPLES = r'''
- name: Tune a reverse proxy for 860 000 connections
  sysctune.sysctune.sysctune:
    profile: reverse-proxy
    set:
      connections.concurrent: 860000
      connections.rmem_default: 43KiB

- name: Only the network namespace's own keys, live, with a profile file
  sysctune.sysctune.sysctune:
    profile: /etc/sysctune/batch.toml
    only:
      - net.ipv4.*

- name: Plan what an image would get, without touching the host
  sysctune.sysctune.sysctune:
    profile: web-server
    root: /srv/image
  check_mode: true
  register: plan

- name: Show the keys that would change
  ansible.builtin.debug:
    msg: "{{ plan.settings | selectattr('change') | map(attribute='key') | list }}"
'''

RETURN = r'''
changed:
  description: Whether the drop-in or a live value changed (in check mode, would change).
  returned: always
  type: bool
diff:
  description:
    - Ansible's diff, shown with C(--diff) - the drop-in file, then the live values of the
      managed keys (C(key = value) lines).
  returned: when diff mode is on
  type: list
  elements: dict
  sample:
    - before: ""
      after: "net.ipv4.ip_local_port_range = 32768 65535\n"
      before_header: /etc/sysctl.d/90-sysctune.conf
      after_header: /etc/sysctl.d/90-sysctune.conf
    - before: "net.ipv4.ip_local_port_range = 32768 60999\n"
      after: "net.ipv4.ip_local_port_range = 32768 65535\n"
      before_header: live values
      after_header: live values
settings:
  description: The managed keys, as in sysctune's C(sysctune/plan/v1) document.
  returned: always
  type: list
  elements: dict
  sample:
    - key: net.ipv4.ip_local_port_range
      current: "32768 60999"
      recommended: "32768 65535"
      change: true
      rules: [port-range]
      reason: "29 040 ports needed; 32768 60999 has only 28 232"
      scope: netns
      kubernetes: safe
      pinned: false
findings:
  description: Findings with C(severity) (info, warning, error), C(rule) and C(message).
  returned: always
  type: list
  elements: dict
  sample:
    - severity: info
      rule: port-range
      message: "net.ipv4.ip_local_port_range 32768 60999 -> 32768 65535: ..."
capacity:
  description: Capacity figures, each C({current, recommended}), from the plan.
  returned: always
  type: dict
  sample:
    ports_available:
      current: 28232
      recommended: 32768
dropin:
  description: The drop-in's path inside O(root), whether it changed and (from the plan) its content.
  returned: always
  type: dict
  sample:
    path: /etc/sysctl.d/90-sysctune.conf
    changed: true
live:
  description: The keys apply wrote live, with the values before and after.
  returned: when not in check mode
  type: list
  elements: dict
  sample:
    - key: vm.swappiness
      from: "60"
      to: "10"
rollback:
  description: The rollback record apply wrote, as a path inside O(root).
  returned: when not in check mode
  type: str
  sample: /var/lib/sysctune/rollback.conf
undo_command:
  description: The command that restores the previous values.
  returned: when not in check mode
  type: str
  sample: sysctune rollback
forced:
  description: Whether O(force) overrode a refusal.
  returned: when not in check mode
  type: bool
plan:
  description: sysctune's whole C(sysctune/plan/v1) document.
  returned: always
  type: dict
'''

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.sysctune.sysctune.plugins.module_utils.sysctune import base_argv, run_json


def toml_value(value):
    """--set takes a TOML value; YAML booleans must not become Python's True."""
    if isinstance(value, bool):
        return 'true' if value else 'false'
    return str(value)


def plan_flags(params):
    flags = ['--profile', params['profile']]
    for field, value in params['set'].items():
        flags += ['--set', '%s=%s' % (field, toml_value(value))]
    for glob in params['only']:
        flags += ['--only', glob]
    if params['dropin'] is not None:
        flags += ['--dropin', params['dropin']]
    if params['state_dir'] is not None:
        flags += ['--state-dir', params['state_dir']]
    for key in params['allow_keys']:
        flags += ['--allow-key', key]
    return flags


def read_dropin(root, path):
    """The drop-in as it is on the host now ('' when absent): the diff's before."""
    full = os.path.join(root, path.lstrip('/'))
    try:
        with open(full, 'r') as f:
            return f.read()
    except (IOError, OSError):
        return ''


def live_lines(settings, field):
    return ''.join('%s = %s\n' % (s['key'], s[field] if s[field] is not None else '(absent)') for s in settings)


def make_diff(before, plan, changed):
    dropin = plan['dropin']
    after = dropin['content'] if changed else before
    settings = plan['settings']
    live_after = 'recommended' if changed else 'current'
    return [
        dict(before=before, after=after, before_header=dropin['path'], after_header=dropin['path']),
        dict(before=live_lines(settings, 'current'), after=live_lines(settings, live_after),
             before_header='live values', after_header='live values'),
    ]


def main():
    module = AnsibleModule(
        argument_spec=dict(
            profile=dict(type='str', required=True),
            set=dict(type='dict', default={}),
            only=dict(type='list', elements='str', default=[]),
            dropin=dict(type='str'),
            root=dict(type='path', default='/'),
            state_dir=dict(type='str'),
            force=dict(type='bool', default=False),
            allow_keys=dict(type='list', elements='str', default=[], no_log=False),
            executable=dict(type='path', default='sysctune'),
        ),
        supports_check_mode=True,
    )
    params = module.params
    flags = plan_flags(params)

    # The plan comes first in both modes: it writes nothing and carries what the diff and
    # the results need (settings, capacity, the drop-in's new content).
    dummy, plan = run_json(module, base_argv(module, 'plan') + flags)
    result = dict(
        settings=plan.get('settings', []),
        findings=plan.get('findings', []),
        capacity=plan.get('capacity', {}),
        dropin=plan.get('dropin', {}),
        plan=plan,
    )
    # Read before apply rewrites it.
    dropin_before = read_dropin(params['root'], plan['dropin']['path'])

    if module.check_mode:
        errors = [f['message'] for f in result['findings'] if f.get('severity') == 'error']
        if errors and not params['force']:
            module.fail_json(msg='sysctune apply would refuse this plan (force: true overrides): ' + '; '.join(errors),
                             **result)
        changed = bool(plan.get('changed'))
    else:
        argv = base_argv(module, 'apply') + flags
        if params['force']:
            argv.append('--force')
        dummy, report = run_json(module, argv)
        changed = bool(report.get('changed'))
        result['findings'] = report.get('findings', result['findings'])
        result['dropin'] = dict(result['dropin'], changed=report.get('dropin', {}).get('changed', False))
        for field in ('live', 'rollback', 'undo_command', 'forced', 'overridden'):
            if field in report:
                result[field] = report[field]

    if module._diff:
        result['diff'] = make_diff(dropin_before, plan, changed)
    module.exit_json(changed=changed, **result)


if __name__ == '__main__':
    main()
