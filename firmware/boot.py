# Runs before main.py on every boot. Kept empty of logic so a broken main.py never stops the REPL.
