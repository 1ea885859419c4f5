# Runs the node. Ctrl-C at the REPL stops it so a field tech can inspect or reflash.
import node

node.main()
