"""`dployr completion bash|zsh`: a completion script generated from the argparse tree itself
(commands, subcommands, flags, choices), so it never drifts from the commands."""

from __future__ import annotations

import argparse
import shlex
from dataclasses import dataclass, field
from typing import Any

ROOT = "dployr"


def add_commands(commands: Any) -> None:
    parser = commands.add_parser(
        "completion",
        help="print a bash or zsh completion script",
        description="Print a completion script for bash or zsh, made from dployr's commands.",
        epilog="example:\n"
        '  eval "$(dployr completion bash)"   # in ~/.bashrc\n'
        '  eval "$(dployr completion zsh)"    # in ~/.zshrc\n'
        "  dployr completion bash > /etc/bash_completion.d/dployr",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("shell", choices=("bash", "zsh"), help="the shell to complete in")
    parser.set_defaults(run=run_completion)


def run_completion(args: argparse.Namespace) -> int:
    from dployr.cli import build_parser

    print(script(build_parser(), args.shell), end="")
    return 0


@dataclass
class Level:
    """What can follow a command path (`dployr services`): its subcommands, the choices of
    its positional arguments, its flags, and which flags take a value (with their choices)."""

    subcommands: list[str] = field(default_factory=list)
    choices: list[str] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    valued: dict[str, list[str]] = field(default_factory=dict)


def walk(parser: argparse.ArgumentParser, path: str = ROOT) -> dict[str, Level]:
    """Every command path of the tree, depth first."""
    level = Level()
    levels = {path: level}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                level.subcommands.append(name)
                levels.update(walk(sub, f"{path} {name}"))
        elif action.option_strings:
            level.flags.extend(action.option_strings)
            if action.nargs != 0:  # not a switch: the next word is its value
                for flag in action.option_strings:
                    level.valued[flag] = [str(c) for c in action.choices or ()]
        elif action.choices:
            level.choices.extend(str(c) for c in action.choices)
    return levels


def script(parser: argparse.ArgumentParser, shell: str) -> str:
    levels = walk(parser)
    table = _table(levels)
    if shell == "bash":
        return BASH.replace("@TABLE@", table)
    return ZSH.replace("@TABLE@", table)


def _words(words: list[str]) -> str:
    return shlex.quote(" ".join(words))


def _table(levels: dict[str, Level]) -> str:
    """Two shell functions (plain POSIX `case`, the same in bash and zsh): `_dployr_level PATH`
    sets what may follow PATH; `_dployr_choices 'PATH FLAG'` the values FLAG takes there."""
    lines = ["_dployr_level() {", '    case "$1" in']
    choices = []
    for path, level in levels.items():
        lines.append(
            f"        {shlex.quote(path)}) _dployr_subs={_words(level.subcommands)}; "
            f"_dployr_words={_words(level.subcommands + level.choices)}; "
            f"_dployr_flags={_words(level.flags)}; _dployr_valued={_words(list(level.valued))};;"
        )
        choices += [
            f"        {shlex.quote(f'{path} {flag}')}) _dployr_reply={_words(values)};;"
            for flag, values in level.valued.items()
            if values
        ]
    lines += [
        "        *) _dployr_subs=''; _dployr_words=''; _dployr_flags=''; _dployr_valued='';;",
        "    esac",
        "}",
        "_dployr_choices() {",
        "    _dployr_reply=''",
        '    case "$1" in',
        *choices,
        "    esac",
        "}",
    ]
    return "\n".join(lines)


# Shared by both shells: the command path the words typed so far lead to (a flag's value is
# skipped; it could be spelt like a command).
_PATH = """_dployr_path() {
    _dployr_at=dployr
    _dployr_level "$_dployr_at"
    local skip=0 word
    for word in "$@"; do
        if [ "$skip" = 1 ]; then skip=0; continue; fi
        case " $_dployr_valued " in *" $word "*) skip=1; continue;; esac
        case " $_dployr_subs " in
            *" $word "*) _dployr_at="$_dployr_at $word"; _dployr_level "$_dployr_at";;
        esac
    done
}"""

BASH = (
    """# bash completion for dployr, generated from its commands by `dployr completion bash`.
# Enable it with this line in ~/.bashrc:  eval "$(dployr completion bash)"
@TABLE@
"""
    + _PATH
    + """
_dployr() {
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
    _dployr_path "${COMP_WORDS[@]:1:COMP_CWORD-1}"
    if [ "$COMP_CWORD" -gt 1 ] && [[ " $_dployr_valued " == *" $prev "* ]]; then
        _dployr_choices "$_dployr_at $prev"
        if [ -n "$_dployr_reply" ]; then
            mapfile -t COMPREPLY < <(compgen -W "$_dployr_reply" -- "$cur")
        else
            COMPREPLY=(); compopt -o default 2>/dev/null
        fi
        return 0
    fi
    if [[ $cur == -* ]]; then
        mapfile -t COMPREPLY < <(compgen -W "$_dployr_flags" -- "$cur")
    elif [ -n "$_dployr_words" ]; then
        mapfile -t COMPREPLY < <(compgen -W "$_dployr_words" -- "$cur")
    else
        COMPREPLY=(); compopt -o default 2>/dev/null  # a path, a name: the shell's own
    fi
    return 0
}
complete -F _dployr dployr
"""
)

ZSH = (
    """#compdef dployr
# zsh completion for dployr, generated from its commands by `dployr completion zsh`.
# Enable it with this line in ~/.zshrc:  eval "$(dployr completion zsh)"
@TABLE@
"""
    + _PATH
    + """
_dployr() {
    local cur=${words[CURRENT]} prev=${words[CURRENT-1]}
    _dployr_path "${(@)words[2,CURRENT-1]}"
    if (( CURRENT > 2 )) && [[ " $_dployr_valued " == *" $prev "* ]]; then
        _dployr_choices "$_dployr_at $prev"
        if [[ -n $_dployr_reply ]]; then compadd -- ${=_dployr_reply}; else _files; fi
        return
    fi
    if [[ $cur == -* ]]; then
        compadd -- ${=_dployr_flags}
    elif [[ -n $_dployr_words ]]; then
        compadd -- ${=_dployr_words}
    else
        _files
    fi
}
if ! (( $+functions[compdef] )); then
    autoload -Uz compinit && compinit
fi
compdef _dployr dployr
"""
)
