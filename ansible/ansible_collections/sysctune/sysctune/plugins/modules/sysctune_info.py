#!/usr/bin/python
# -*- coding: utf-8 -*-

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: sysctune_info
short_description: Read sysctune's view of a host - show, doctor and status
version_added: "0.1.0"
description:
  - Runs C(sysctune show), C(sysctune doctor) and C(sysctune status) with
    C(--format json) on the managed host and returns their documents, to register and use
    in later tasks (for example to fail a play on drift or on a doctor error).
  - Writes nothing. Drift (C(status) exit 1) and doctor warnings (C(doctor) exit 1) are
    results, not failures; unreadable host data (exit 2) fails the task with sysctune's
    message.
requirements:
  - The C(sysctune) binary on the managed host (see O(executable)).
author:
  - sysctune maintainers
options:
  gather:
    description:
      - Which documents to read.
    type: list
    elements: str
    choices: [show, doctor, status]
    default: [show, doctor, status]
  keys:
    description:
      - Keys for C(show) (all the keys the rules know when empty).
    type: list
    elements: str
    default: []
  root:
    description:
      - Filesystem root to read instead of C(/) (C(--root)).
    type: path
    default: /
  state_dir:
    description:
      - sysctune's state directory for C(status), as a path inside O(root). sysctune's
        default is C(/var/lib/sysctune).
    type: str
  executable:
    description:
      - The sysctune binary, a name looked up in C(PATH) or a path.
    type: path
    default: sysctune
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details: The module writes nothing; it runs the same in check mode.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: none
  platform:
    description: Target OS/families that can be operated against.
    support: full
    platforms: posix
seealso:
  - module: sysctune.sysctune.sysctune
'''

EXAMPLES = r'''
- name: Read sysctune's view of the host
  sysctune.sysctune.sysctune_info:
  register: tune

- name: Fail on drift from what sysctune applied
  ansible.builtin.assert:
    that: tune.status.in_sync
    fail_msg: "drift on {{ tune.status['keys'] | selectattr('drift') | map(attribute='key') | list }}"

- name: Only the doctor's findings
  sysctune.sysctune.sysctune_info:
    gather: [doctor]
  register: health
'''

RETURN = r'''
show:
  description: The C(sysctune/show/v1) document - host facts, the sysctl.d files in the order systemd reads them, each key's live and boot value.
  returned: when show is gathered
  type: dict
  sample:
    schema: sysctune/show/v1
    host:
      mem_total: 16655601664
      page_size: 4096
    files: [/etc/sysctl.d/90-sysctune.conf]
    keys:
      - key: vm.swappiness
        live: "10"
        boot:
          value: "10"
          file: /etc/sysctl.d/90-sysctune.conf
          line: 7
        shadowed: []
doctor:
  description: The C(sysctune/doctor/v1) document - C(status) (ok, warning, error), C(findings) and C(facts).
  returned: when doctor is gathered
  type: dict
  sample:
    schema: sysctune/doctor/v1
    status: warning
    findings:
      - severity: warning
        rule: oom
        message: "MemAvailable 878.9 MiB is 5.5% of MemTotal ..."
status:
  description: The C(sysctune/status/v1) document - what the last apply set and whether live, boot and the drop-in agree (C(in_sync)).
  returned: when status is gathered
  type: dict
  sample:
    schema: sysctune/status/v1
    in_sync: true
    applied:
      profile: batch-client
'''

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.sysctune.sysctune.plugins.module_utils.sysctune import base_argv, run_json


def main():
    module = AnsibleModule(
        argument_spec=dict(
            gather=dict(type='list', elements='str', choices=['show', 'doctor', 'status'],
                        default=['show', 'doctor', 'status']),
            keys=dict(type='list', elements='str', default=[], no_log=False),
            root=dict(type='path', default='/'),
            state_dir=dict(type='str'),
            executable=dict(type='path', default='sysctune'),
        ),
        supports_check_mode=True,
    )
    params = module.params
    result = dict(changed=False)
    if 'show' in params['gather']:
        dummy, result['show'] = run_json(module, base_argv(module, 'show') + params['keys'])
    if 'doctor' in params['gather']:
        # Exit 1 is "a warning or an error was found": a result, not a failure.
        dummy, result['doctor'] = run_json(module, base_argv(module, 'doctor'), ok_codes=(0, 1))
    if 'status' in params['gather']:
        argv = base_argv(module, 'status')
        if params['state_dir'] is not None:
            argv += ['--state-dir', params['state_dir']]
        # Exit 1 is drift.
        dummy, result['status'] = run_json(module, argv, ok_codes=(0, 1))
    module.exit_json(**result)


if __name__ == '__main__':
    main()
