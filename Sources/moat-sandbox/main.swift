// moat-sandbox: the companion binary of `moat` that a sandbox's own
// processes (launcher, Gofer, Sentry) run when it is installed next to it
// (Sandbox/Launch.swift says why). It parses nothing itself: SandboxMain.

import SandboxMain
import Sentry

StartupProfile.begin()
InternalCommand.main(CommandLine.arguments.dropFirst())
