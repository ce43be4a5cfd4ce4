# -*- coding: utf-8 -*-
# Shared by the sysctune modules: run the binary with --format json and read its document.

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json


def run_json(module, argv, ok_codes=(0,)):
    """Run sysctune, return (rc, document). Fails the task with sysctune's own message
    (its sysctune/error/v1 document, else stderr) on any exit code not in ok_codes."""
    rc, out, err = module.run_command(argv)
    doc = None
    try:
        doc = json.loads(out) if out.strip() else None
    except ValueError:
        doc = None
    if rc not in ok_codes or not isinstance(doc, dict):
        msg = None
        if isinstance(doc, dict) and doc.get('schema') == 'sysctune/error/v1':
            msg = doc.get('error')
        if not msg:
            msg = err.strip() or out.strip() or 'sysctune exited %d with no output' % rc
        module.fail_json(msg=msg, rc=rc, cmd=argv, stdout=out, stderr=err)
    return rc, doc


def base_argv(module, command):
    """The binary, the global flags and the subcommand."""
    exe = module.params['executable']
    if '/' not in exe:
        exe = module.get_bin_path(exe, required=True)
    return [exe, '--root', module.params['root'], command, '--format', 'json']
