from harness.commands.cli import program

program()
