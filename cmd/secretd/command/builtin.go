package command

import "github.com/spf13/cobra"

// completionExamples are the ways to load cobra's completion scripts.
var completionExamples = map[string]string{
	"completion": `  source <(secretd completion bash)
  secretd completion zsh > "${fpath[1]}/_secretd"`,
	"bash": `  source <(secretd completion bash)
  secretd completion bash > /etc/bash_completion.d/secretd`,
	"zsh":        `  secretd completion zsh > "${fpath[1]}/_secretd"`,
	"fish":       `  secretd completion fish > ~/.config/fish/completions/secretd.fish`,
	"powershell": `  secretd completion powershell | Out-String | Invoke-Expression`,
}

// addBuiltinCommands adds cobra's help and completion commands now rather
// than at Execute, so that they carry examples like every other command
// and appear in the generated man pages.
func addBuiltinCommands(root *cobra.Command) {
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	for _, c := range root.Commands() {
		switch c.Name() {
		case "help":
			c.Example = "  secretd help secret create"
		case "completion":
			c.Example = completionExamples["completion"]
			for _, sub := range c.Commands() {
				sub.Example = completionExamples[sub.Name()]
			}
		}
	}
}
