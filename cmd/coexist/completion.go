package main

import (
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
)

// completion lists the commands, so it joins them at init (a literal entry
// would be an initialization cycle).
func init() {
	commands["completion"] = command{"print a bash or zsh completion script", runCompletion}
}

// nounsByName are the nouns whose verbs shell completion offers.
func nounsByName() map[string]noun {
	return map[string]noun{"services": servicesNoun, "versions": versionsNoun, "containers": containersNoun,
		"nodes": nodesNoun, "acl": {verbs: map[string]*verb{"tokens": nil}}, "acl tokens": aclTokensNoun}
}

func runCompletion(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("completion", flag.ContinueOnError)
	fs.SetOutput(stderr)
	describe(fs, "bash|zsh", "Prints a shell completion script for coexist's commands and subcommands.",
		"source <(coexist completion bash)\ncoexist completion zsh > \"${fpath[1]}/_coexist\"")
	pos, code, ok := parseArgs(fs, args)
	if !ok {
		return code
	}
	if !checkArgs(stderr, "completion", pos, "<shell>") {
		return 2
	}
	var cmds []string
	for c := range commands {
		cmds = append(cmds, c)
	}
	sort.Strings(cmds)
	var cases strings.Builder
	nouns := nounsByName()
	keys := make([]string, 0, len(nouns))
	for k := range nouns {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		var vs []string
		for v := range nouns[k].verbs {
			vs = append(vs, v)
		}
		sort.Strings(vs)
		fmt.Fprintf(&cases, "    %q) words=%q ;;\n", k, strings.Join(vs, " "))
	}
	body := fmt.Sprintf(`_coexist_words() {
  local cmdpath="$1" words=""
  case "$cmdpath" in
    "") words=%q ;;
%s  esac
  echo "$words"
}
`, strings.Join(cmds, " "), cases.String())
	switch pos[0] {
	case "bash":
		fmt.Fprint(stdout, "# coexist bash completion: source <(coexist completion bash)\n"+body+`_coexist() {
  local cur="${COMP_WORDS[COMP_CWORD]}" cmdpath="" i
  for ((i = 1; i < COMP_CWORD; i++)); do
    [[ "${COMP_WORDS[i]}" == -* ]] && continue
    local next="${cmdpath:+$cmdpath }${COMP_WORDS[i]}"
    [[ -n "$(_coexist_words "$next")" || -z "$cmdpath" ]] && cmdpath="$next" || break
  done
  COMPREPLY=($(compgen -W "$(_coexist_words "$cmdpath")" -- "$cur"))
}
complete -F _coexist coexist
`)
	case "zsh":
		fmt.Fprint(stdout, "#compdef coexist\n# coexist zsh completion\n"+body+`_coexist() {
  # not "path": zsh ties $path to $PATH
  local cmdpath="" w
  for w in "${(@)words[2,CURRENT-1]}"; do
    [[ "$w" == -* ]] && continue
    local next="${cmdpath:+$cmdpath }$w"
    if [[ -n "$(_coexist_words "$next")" || -z "$cmdpath" ]]; then cmdpath="$next"; else break; fi
  done
  compadd -- ${=$(_coexist_words "$cmdpath")}
}
compdef _coexist coexist
`)
	default:
		fmt.Fprintf(stderr, "coexist completion: shell %q: want bash or zsh\n", pos[0])
		return 2
	}
	return 0
}
