"""Every user command as data (registry), key bindings and conflicts (keymap), global keys (hotkeys)."""
