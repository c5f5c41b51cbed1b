"""The build loop (moby builder/dockerfile/builder.go and evaluator.go).

The ARGs before the first FROM come first, then each stage: FROM picks the image (or a
previous stage, or scratch) and its configuration, the image's ONBUILD triggers run, then each
instruction is expanded with the stage's ENV and ARGs and dispatched. Every step is announced
as `Step N/M : <instruction>` and ends with ` ---> <image id>`; after each stage the image ID
is emitted (`aux`). `--target` stops at a stage, `--label` adds LABELs to the last one.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from ..formatting import short_id
from ..imagestore import Image
from ..service import Services
from . import dispatchers as d
from . import instructions as ins
from .buildargs import BuildArgs
from .cache import ImageCache
from .imagecontext import SCRATCH, SCRATCH_IMAGE, ImageSourceError, ImageSources, platform_of
from .internals import BuildError, BuildOptions, DispatchState, Internals, build_arch, set_default_path
from .output import BuildOutput
from .parser import ParseError, Result, parse
from .remotecontext import Source
from .shell_lex import Lex, envs_from_list


class StageResults:
    """The stages built so far, by name and by index (for FROM <stage> and COPY --from)."""

    def __init__(self) -> None:
        self.flat: list[dict[str, Any]] = []
        self.indexed: dict[str, dict[str, Any]] = {}

    def by_name(self, name: str) -> dict[str, Any] | None:
        return self.indexed.get(name.lower())

    def get(self, name_or_index: str) -> dict[str, Any] | None:
        found = self.by_name(name_or_index)
        if found is not None:
            return found
        try:
            i = int(name_or_index, 10)
        except ValueError:
            return None
        if i == len(self.flat):
            raise BuildError("refers to current build stage")
        if i < 0 or i > len(self.flat):
            raise BuildError("index out of bounds")
        return self.flat[i]

    def check_name(self, name: str) -> None:
        if name and self.by_name(name) is not None:
            raise BuildError(f"{name} stage name already used")

    def commit(self, name: str, config: dict[str, Any]) -> None:
        self.check_name(name)
        if name:
            self.indexed[name.lower()] = config
        self.flat.append(config)


Dispatcher = Callable[["Builder", DispatchState, Any], None]

_DISPATCH: dict[type, Dispatcher] = {
    ins.EnvCommand: d.dispatch_env,
    ins.MaintainerCommand: d.dispatch_maintainer,
    ins.LabelCommand: d.dispatch_label,
    ins.OnbuildCommand: d.dispatch_onbuild,
    ins.WorkdirCommand: d.dispatch_workdir,
    ins.RunCommand: d.dispatch_run,
    ins.CmdCommand: d.dispatch_cmd,
    ins.HealthCheckCommand: d.dispatch_healthcheck,
    ins.EntrypointCommand: d.dispatch_entrypoint,
    ins.UserCommand: d.dispatch_user,
    ins.VolumeCommand: d.dispatch_volume,
    ins.StopSignalCommand: d.dispatch_stopsignal,
    ins.ArgCommand: d.dispatch_arg,
    ins.ShellCommand: d.dispatch_shell,
}


class Builder:
    """One build: its options, output, cache, image sources and context."""

    def __init__(
        self,
        svc: Services,
        options: BuildOptions,
        out: BuildOutput,
        source: Source | None,
        sources: ImageSources,
        arch: str,
    ) -> None:
        self.svc = svc
        self.options = options
        self.out = out
        self.source = source
        self.sources = sources
        self.cache = ImageCache(svc.images, enabled=not options.no_cache)
        self.internals = Internals(svc, options, out, self.cache, arch)
        self.shlex = Lex()
        self.stages = StageResults()

    # ---- the whole build ----------------------------------------------------------------------

    def build(self, dockerfile: Result) -> DispatchState:
        try:
            stages, meta_args = ins.parse_dockerfile(dockerfile.ast)
        except ins.InstructionError as exc:
            raise BuildError(str(exc)) from None
        if self.options.target:
            idx = ins.has_stage(stages, self.options.target)
            if idx is None:
                raise BuildError(f'target stage "{self.options.target}" could not be found')
            stages = stages[: idx + 1]
        for key in sorted(self.options.labels):
            stages[-1].commands.append(ins.new_label_command(key, self.options.labels[key]))
        for w in dockerfile.warnings:
            self.out.stderr(f"[WARNING]: {w}\n")
        if dockerfile.warnings:
            self.out.stderr("[WARNING]: Empty continuation lines will become errors in a future release.\n")
        self.shlex = Lex(dockerfile.escape_token)
        state = self.dispatch_dockerfile(stages, meta_args)
        if not state.image_id:
            raise BuildError("No image was generated. Is your Dockerfile empty?")
        return state

    def dispatch_dockerfile(self, stages: list[ins.Stage], meta_args: list[ins.ArgCommand]) -> DispatchState:
        build_args = BuildArgs(self.options.build_args)
        total = len(meta_args) + len(stages) + sum(len(s.commands) for s in stages)
        step = 1
        for meta in meta_args:
            step = self.print_step(step, total, str(meta))
            meta.expand(functools.partial(d.expand_word, self.shlex, envs=build_args.all_allowed()))
            for arg in meta.args:
                build_args.add_arg(arg.key, arg.value)
                build_args.add_meta_arg(arg.key, arg.value)
        state = DispatchState(build_args=build_args.clone())
        for stage in stages:
            self.stages.check_name(stage.name)
            args = build_args.clone()
            args.reset_allowed()
            state = DispatchState(build_args=args)
            step = self.print_step(step, total, stage.source_code)
            self.initialize_stage(state, stage)
            state.update_run_config()
            self.out.stdout(f" ---> {short_id(state.image_id)}\n")
            for cmd in stage.commands:
                step = self.print_step(step, total, str(cmd))
                self.dispatch(state, cmd)
                state.update_run_config()
                self.out.stdout(f" ---> {short_id(state.image_id)}\n")
            if state.image_id:
                self.out.aux({"ID": state.image_id})
            build_args.merge_referenced(state.build_args)
            self.stages.commit(state.stage_name, state.run_config)
        warning = build_args.unused_warning()
        if warning:
            self.out.stdout(warning + "\n")
        return state

    def print_step(self, step: int, total: int, text: str) -> int:
        self.out.stdout(f"Step {step}/{total} : {text}\n")
        return step + 1

    # ---- one stage -------------------------------------------------------------------------------

    def initialize_stage(self, state: DispatchState, stage: ins.Stage) -> None:
        """FROM: the base image's configuration becomes the build's, then its ONBUILD triggers run."""
        self.cache.reset()
        meta = state.build_args.all_meta()
        platform = self.options.platform
        if stage.platform:
            platform = d.expand_word(self.shlex, stage.platform, meta)
            build_arch(platform)  # a bad one fails here, as moby's platforms.Parse does
        name = d.expand_word(self.shlex, stage.base_name, meta)
        if not name:
            raise BuildError(f"base name ({stage.base_name}) should not be blank")
        img = self.image_or_stage(name, platform)
        state.stage_name = stage.name
        state.image_id = img.id
        state.os, _ = platform_of(img)
        state.base_image = img
        run_config = img.config.get("config") if img.id else None
        state.run_config = dict(run_config or {})
        set_default_path(state.run_config)
        state.run_config["OpenStdin"] = False
        state.run_config["StdinOnce"] = False
        triggers = state.run_config.get("OnBuild") or []
        if triggers:
            state.run_config["OnBuild"] = None
            self.run_triggers(state, list(triggers))

    def image_or_stage(self, name: str, platform: str) -> Image:
        local_only = False
        stage = self.stages.by_name(name)
        if stage is not None:
            name, local_only = stage.get("Image") or "", True
            if not name:
                return SCRATCH_IMAGE
        if name == SCRATCH:
            return SCRATCH_IMAGE
        try:
            return self.sources.get(name, local_only, platform)
        except ImageSourceError as exc:
            raise BuildError(str(exc)) from None

    def run_triggers(self, state: DispatchState, triggers: list[str]) -> None:
        """The base image's ONBUILD instructions, each parsed and dispatched as a step of its own."""
        self.out.stdout(f"# Executing {len(triggers)} build trigger{'s' if len(triggers) > 1 else ''}\n")
        for trigger in triggers:
            state.update_run_config()
            try:
                result = parse(trigger)
            except ParseError as exc:
                raise BuildError(str(exc)) from None
            if len(result.ast.children) != 1:
                raise BuildError("onbuild trigger should be a single expression")
            try:
                cmd = ins.parse_command(result.ast.children[0])
            except ins.InstructionError as exc:
                raise BuildError(str(exc)) from None
            self.dispatch(state, cmd)

    # ---- one instruction ----------------------------------------------------------------------

    def dispatch(self, state: DispatchState, cmd: ins.Command) -> None:
        """Expand, dispatch, then remove the step's containers (always with --force-rm, after
        success with --rm)."""
        env = list(state.run_config.get("Env") or [])
        envs = envs_from_list(env + state.build_args.filter_allowed(env))
        cmd.expand(lambda w: d.expand_word(self.shlex, w, envs))
        failed = True
        try:
            if isinstance(cmd, ins.ExposeCommand):
                d.dispatch_expose(self, state, cmd, envs)
            elif isinstance(cmd, (ins.CopyCommand, ins.AddCommand)):
                from .copier import dispatch_copy

                dispatch_copy(self, state, cmd, envs)
            else:
                _DISPATCH[type(cmd)](self, state, cmd)
            failed = False
        finally:
            if self.options.force_remove or (self.options.remove and not failed):
                self.internals.remove_all()


__all__ = ["Builder", "StageResults"]
