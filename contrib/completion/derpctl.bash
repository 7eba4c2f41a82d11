# SPDX-License-Identifier: ISC
# derpctl.bash: bash completion for derpctl(8).
#
# Install as /usr/share/bash-completion/completions/derpctl, or source it
# from ~/.bashrc. It completes options, command words (the same pattern
# strings as derpctl's usage) and, for <key> and [prefix], the keys of the
# connected clients, read with "derpctl -j show clients".

_derpctl_patterns=(
	"show clients [prefix]"
	"show client <key>"
	"show rejects"
	"show stats"
	"show admission"
	"show mesh"
	"show certs"
	"kick <key>"
	"reload"
	"log verbose"
	"log brief"
	"monitor"
	"top"
)

# Keys of the connected clients, one per line; nothing if derpd is not
# reachable. $1 is the -s argument, if any.
_derpctl_keys()
{
	local -a cmd=(derpctl -j)

	[[ -n $1 ]] && cmd+=(-s "$1")
	if command -v timeout >/dev/null 2>&1; then
		cmd=(timeout 2 "${cmd[@]}")
	fi
	"${cmd[@]}" show clients 2>/dev/null |
	    grep -o '"key":"nodekey:[0-9a-f]\{64\}"' |
	    cut -d'"' -f4 | sort -u
}

_derpctl()
{
	local line=${COMP_LINE:0:COMP_POINT} cur sock="" opts_done=0
	local -a words cmdwords candidates
	local w i n p tok typed ok

	# Split on blanks ourselves: COMP_WORDS would cut "nodekey:ab" at
	# the colon.
	read -r -a words <<<"$line"
	if [[ $line == *[[:blank:]] ]]; then
		cur=""
	else
		cur=${words[${#words[@]}-1]}
		unset 'words[${#words[@]}-1]'
	fi

	for ((i = 1; i < ${#words[@]}; i++)); do
		w=${words[i]}
		if ((!opts_done)); then
			case $w in
			-s)	((i++)); sock=${words[i]}; continue ;;
			-s*)	sock=${w#-s}; continue ;;
			-j)	continue ;;
			-*)	continue ;;
			esac
			opts_done=1
		fi
		cmdwords+=("$w")
	done

	# The argument of -s: a socket path.
	if ((${#words[@]} > 0)) && [[ ${words[${#words[@]}-1]} == -s ]] &&
	    ((!opts_done)); then
		compopt -o filenames 2>/dev/null
		COMPREPLY=($(compgen -f -- "$cur"))
		return
	fi
	if ((!opts_done)) && [[ $cur == -* ]]; then
		COMPREPLY=($(compgen -W "-j -s" -- "$cur"))
		return
	fi

	# Patterns whose first words fit what was typed (abbreviations too);
	# offer the next word of each.
	n=${#cmdwords[@]}
	for p in "${_derpctl_patterns[@]}"; do
		read -r -a tok <<<"$p"
		((${#tok[@]} > n)) || continue
		ok=1
		for ((i = 0; i < n; i++)); do
			typed=${cmdwords[i]}
			case ${tok[i]} in
			"<"*|"["*) ;;
			"$typed"*) ;;
			*)	ok=0; break ;;
			esac
		done
		((ok)) && candidates+=("${tok[n]}")
	done

	COMPREPLY=()
	for w in "${candidates[@]}"; do
		case $w in
		"<key>"|"[prefix]")
			while IFS= read -r p; do
				[[ -n $p ]] || continue
				[[ $p == "$cur"* ]] && COMPREPLY+=("$p")
				[[ ${p#nodekey:} == "$cur"* && -n $cur ]] &&
				    COMPREPLY+=("${p#nodekey:}")
			done < <(_derpctl_keys "$sock")
			;;
		*)
			[[ $w == "$cur"* ]] && COMPREPLY+=("$w")
			;;
		esac
	done
	COMPREPLY=($(printf '%s\n' "${COMPREPLY[@]}" | sort -u))

	# Bash replaces only the text after the last word break; with ':'
	# in COMP_WORDBREAKS that is the part after "nodekey:".
	if [[ $cur == *:* && $COMP_WORDBREAKS == *:* ]]; then
		p=${cur%"${cur##*:}"}
		for i in "${!COMPREPLY[@]}"; do
			COMPREPLY[i]=${COMPREPLY[i]#"$p"}
		done
	fi
}

complete -F _derpctl derpctl
