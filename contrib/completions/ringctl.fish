function __ringctl_should_offer_completions_for_flags_or_options -a expected_commands
    set -l non_repeating_flags_or_options $argv[2..]
    set -l non_repeating_flags_or_options_absent 0
    set -l positional_index 0
    set -l commands
    __ringctl_parse_tokens
    test "$commands" = "$expected_commands"; and return $non_repeating_flags_or_options_absent
end

function __ringctl_should_offer_completions_for_positional -a expected_commands positional_index_comparison expected_positional_index
    set -l non_repeating_flags_or_options
    set -l non_repeating_flags_or_options_absent 0
    set -l positional_index 0
    set -l commands
    __ringctl_parse_tokens
    test "$commands" = "$expected_commands" -a \( "$positional_index" "$positional_index_comparison" "$expected_positional_index" \)
end

function __ringctl_parse_tokens -S
    set -l unparsed_tokens (__ringctl_tokens -pc)
    switch $unparsed_tokens[1]
    case 'ringctl'
        __ringctl_parse_subcommand 0 'version' 'h/help'
        switch $unparsed_tokens[1]
        case 'status'
            __ringctl_parse_subcommand -r 1 'json' 'instances' 'version' 'h/help'
        case 'start'
            __ringctl_parse_subcommand -r 1 'no-block' 'version' 'h/help'
        case 'stop'
            __ringctl_parse_subcommand -r 1 'no-block' 'version' 'h/help'
        case 'restart'
            __ringctl_parse_subcommand -r 1 'no-block' 'version' 'h/help'
        case 'scale'
            __ringctl_parse_subcommand 2 'no-block' 'version' 'h/help'
        case 'kill'
            __ringctl_parse_subcommand 1 's/signal=' 'no-block' 'version' 'h/help'
        case 'reload'
            __ringctl_parse_subcommand -r 1 'no-block' 'version' 'h/help'
        case 'logs'
            __ringctl_parse_subcommand 1 'f/follow' 'n/lines=' 'version' 'h/help'
        case 'why'
            __ringctl_parse_subcommand 1 'n/lines=' 'version' 'h/help'
        case 'events'
            __ringctl_parse_subcommand 0 'json' 'n/count=' 'version' 'h/help'
        case 'check'
            __ringctl_parse_subcommand 1 'version' 'h/help'
        case 'help'
            __ringctl_parse_subcommand -r 1 'version'
        end
    end
end

function __ringctl_tokens
    if test (string split -m 1 -f 1 -- . "$FISH_VERSION") -gt 3
        commandline --tokens-raw $argv
    else
        commandline -o $argv
    end
end

function __ringctl_parse_subcommand -S -a positional_count
    argparse -s r -- $argv
    set -l option_specs $argv[2..]
    set -l is_repeating_positional $_flag_r
    set -el _flag_r
    set -a commands $unparsed_tokens[1]
    set positional_index 0
    while true
        set -e unparsed_tokens[1]
        argparse -sn "$commands" $option_specs -- $unparsed_tokens 2> /dev/null
        set unparsed_tokens $argv
        set positional_index (math $positional_index + 1)
        for non_repeating_flag_or_option in $non_repeating_flags_or_options
            if set -ql "_flag_$(string replace -a - _ -- $non_repeating_flag_or_option)"
                set non_repeating_flags_or_options_absent 1
                break
            end
        end
        test (count $unparsed_tokens) -eq 0 -o \( -z "$is_repeating_positional" -a "$positional_index" -gt "$positional_count" \) && break
    end
end

function __ringctl_complete_directories
    set -l token (commandline -t)
    string match -- '*/' $token
    set -l subdirs $token*/
    printf %s\n $subdirs
end

function __ringctl_custom_completion
    set -x SAP_SHELL fish
    set -x SAP_SHELL_VERSION $FISH_VERSION
    set -l tokens (__ringctl_tokens -p)
    if test -z "$(__ringctl_tokens -t)"
        set -l index (count (__ringctl_tokens -pc))
        set tokens $tokens[..$index] \'\' $tokens[(math $index + 1)..]
    end
    command $tokens[1] $argv $tokens
end

complete -c 'ringctl' -f
complete -c 'ringctl' -n '__ringctl_should_offer_completions_for_flags_or_options "ringctl" version' -l 'version' -d 'Show the version.'
complete -c 'ringctl' -n '__ringctl_should_offer_completions_for_flags_or_options "ringctl" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'ringctl' -n '__ringctl_should_offer_completions_for_positional "ringctl" -eq 1' -fa 'status' -d 'Show the services: state, instances running/wanted, pids, uptime, CPU, memory, restarts.'
complete -c 'ringctl' -n '__ringctl_should_offer_completions_for_positional "ringctl" -eq 1' -fa 'start' -d 'Start services (once their dependencies are ready).'
complete -c 'ringctl' -n '__ringctl_should_offer_completions_for_positional "ringctl" -eq 1' -fa 'stop' -d 'Stop services (stop-signal, then SIGKILL after stop-timeout).'
complete -c 'ringctl' -n '__ringctl_should_offer_completions_for_positional "ringctl" -eq 1' -fa 'restart' -d 'Restart services: rolling, one instance at a time, when several are running.'
complete -c 'ringctl' -n '__ringctl_should_offer_completions_for_positional "ringctl" -eq 1' -fa 'scale' -d 'Change the number of instances of a service.'
complete -c 'ringctl' -n '__ringctl_should_offer_completions_for_positional "ringctl" -eq 1' -fa 'kill' -d 'Send a signal to every process of a service.'
complete -c 'ringctl' -n '__ringctl_should_offer_completions_for_positional "ringctl" -eq 1' -fa 'reload' -d 'Reload the configuration (apply only what changed), or send services their reload-signal.'
complete -c 'ringctl' -n '__ringctl_should_offer_completions_for_positional "ringctl" -eq 1' -fa 'logs' -d 'Show a service\'s output from the journal (and ringmasterd\'s events about it).'
complete -c 'ringctl' -n '__ringctl_should_offer_completions_for_positional "ringctl" -eq 1' -fa 'why' -d 'Tell why an instance last ended: reason, status, limits, restarts, its last output.'
complete -c 'ringctl' -n '__ringctl_should_offer_completions_for_positional "ringctl" -eq 1' -fa 'events' -d 'Follow ringmasterd\'s events: service states, processes started and exited, reloads.'
complete -c 'ringctl' -n '__ringctl_should_offer_completions_for_positional "ringctl" -eq 1' -fa 'check' -d 'Check a configuration file (and the conf.d/*.toml beside it).'
complete -c 'ringctl' -n '__ringctl_should_offer_completions_for_positional "ringctl" -eq 1' -fa 'help' -d 'Show subcommand help information.'
complete -c 'ringctl' -n '__ringctl_should_offer_completions_for_flags_or_options "ringctl status" json' -l 'json' -d 'Print a JSON array of objects instead of the table.'
complete -c 'ringctl' -n '__ringctl_should_offer_completions_for_flags_or_options "ringctl status" instances' -l 'instances' -d 'Also show one row per instance.'
complete -c 'ringctl' -n '__ringctl_should_offer_completions_for_flags_or_options "ringctl status" version' -l 'version' -d 'Show the version.'
complete -c 'ringctl' -n '__ringctl_should_offer_completions_for_flags_or_options "ringctl status" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'ringctl' -n '__ringctl_should_offer_completions_for_flags_or_options "ringctl start" no-block' -l 'no-block' -d 'Return once accepted; do not wait for the result.'
complete -c 'ringctl' -n '__ringctl_should_offer_completions_for_flags_or_options "ringctl start" version' -l 'version' -d 'Show the version.'
complete -c 'ringctl' -n '__ringctl_should_offer_completions_for_flags_or_options "ringctl start" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'ringctl' -n '__ringctl_should_offer_completions_for_flags_or_options "ringctl stop" no-block' -l 'no-block' -d 'Return once accepted; do not wait for the result.'
complete -c 'ringctl' -n '__ringctl_should_offer_completions_for_flags_or_options "ringctl stop" version' -l 'version' -d 'Show the version.'
complete -c 'ringctl' -n '__ringctl_should_offer_completions_for_flags_or_options "ringctl stop" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'ringctl' -n '__ringctl_should_offer_completions_for_flags_or_options "ringctl restart" no-block' -l 'no-block' -d 'Return once accepted; do not wait for the result.'
complete -c 'ringctl' -n '__ringctl_should_offer_completions_for_flags_or_options "ringctl restart" version' -l 'version' -d 'Show the version.'
complete -c 'ringctl' -n '__ringctl_should_offer_completions_for_flags_or_options "ringctl restart" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'ringctl' -n '__ringctl_should_offer_completions_for_flags_or_options "ringctl scale" no-block' -l 'no-block' -d 'Return once accepted; do not wait for the result.'
complete -c 'ringctl' -n '__ringctl_should_offer_completions_for_flags_or_options "ringctl scale" version' -l 'version' -d 'Show the version.'
complete -c 'ringctl' -n '__ringctl_should_offer_completions_for_flags_or_options "ringctl scale" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'ringctl' -n '__ringctl_should_offer_completions_for_flags_or_options "ringctl kill" s signal' -s 's' -l 'signal' -d 'The signal: a name (TERM, SIGHUP, RTMIN+2) or a number.' -rfka ''
complete -c 'ringctl' -n '__ringctl_should_offer_completions_for_flags_or_options "ringctl kill" no-block' -l 'no-block' -d 'Return once accepted; do not wait for the result.'
complete -c 'ringctl' -n '__ringctl_should_offer_completions_for_flags_or_options "ringctl kill" version' -l 'version' -d 'Show the version.'
complete -c 'ringctl' -n '__ringctl_should_offer_completions_for_flags_or_options "ringctl kill" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'ringctl' -n '__ringctl_should_offer_completions_for_flags_or_options "ringctl reload" no-block' -l 'no-block' -d 'Return once accepted; do not wait for the result.'
complete -c 'ringctl' -n '__ringctl_should_offer_completions_for_flags_or_options "ringctl reload" version' -l 'version' -d 'Show the version.'
complete -c 'ringctl' -n '__ringctl_should_offer_completions_for_flags_or_options "ringctl reload" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'ringctl' -n '__ringctl_should_offer_completions_for_flags_or_options "ringctl logs" f follow' -s 'f' -l 'follow' -d 'Follow: keep printing new entries.'
complete -c 'ringctl' -n '__ringctl_should_offer_completions_for_flags_or_options "ringctl logs" lines n' -s 'n' -l 'lines' -d 'Show the last N entries (default: all; with -f, 10).' -rfka ''
complete -c 'ringctl' -n '__ringctl_should_offer_completions_for_flags_or_options "ringctl logs" version' -l 'version' -d 'Show the version.'
complete -c 'ringctl' -n '__ringctl_should_offer_completions_for_flags_or_options "ringctl logs" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'ringctl' -n '__ringctl_should_offer_completions_for_flags_or_options "ringctl why" lines n' -s 'n' -l 'lines' -d 'Show at most N lines of output (default: 20, at most 1000).' -rfka ''
complete -c 'ringctl' -n '__ringctl_should_offer_completions_for_flags_or_options "ringctl why" version' -l 'version' -d 'Show the version.'
complete -c 'ringctl' -n '__ringctl_should_offer_completions_for_flags_or_options "ringctl why" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'ringctl' -n '__ringctl_should_offer_completions_for_flags_or_options "ringctl events" json' -l 'json' -d 'One JSON object per line.'
complete -c 'ringctl' -n '__ringctl_should_offer_completions_for_flags_or_options "ringctl events" count n' -s 'n' -l 'count' -d 'Exit after this many events.' -rfka ''
complete -c 'ringctl' -n '__ringctl_should_offer_completions_for_flags_or_options "ringctl events" version' -l 'version' -d 'Show the version.'
complete -c 'ringctl' -n '__ringctl_should_offer_completions_for_flags_or_options "ringctl events" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'ringctl' -n '__ringctl_should_offer_completions_for_flags_or_options "ringctl check" version' -l 'version' -d 'Show the version.'
complete -c 'ringctl' -n '__ringctl_should_offer_completions_for_flags_or_options "ringctl check" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'ringctl' -n '__ringctl_should_offer_completions_for_flags_or_options "ringctl help" version' -l 'version' -d 'Show the version.'
