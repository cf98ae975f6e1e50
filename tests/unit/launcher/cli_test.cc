// smprun's command line: every flag lands in Options, the program and its
// arguments are passed on untouched, and every mistake is one UsageError line.
#include "cli.h"

#include <gtest/gtest.h>

using smp::launcher::Command;
using smp::launcher::parse_command_line;
using smp::launcher::UsageError;
using Args = std::vector<std::string>;

namespace {

smp::launcher::Options parse(const Args &a) {
  const Command c = parse_command_line(a);
  EXPECT_EQ(c.kind, Command::Run);
  return c.options;
}

std::string error_of(const Args &a) {
  try {
    parse_command_line(a);
  } catch (const UsageError &e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST(Cli, DefaultsMatchDesign) {
  const auto o = parse({"prog"});
  EXPECT_EQ(o.np, 0);  // not given
  EXPECT_EQ(o.pp, 1);
  EXPECT_EQ(o.tp, 1);
  EXPECT_EQ(o.placement, "cluster");
  EXPECT_EQ(o.bind, "auto");
  EXPECT_EQ(o.mpirun, "mpirun");
  EXPECT_FALSE(o.check || o.dry_run || o.print_topology || o.tag_output);
  EXPECT_EQ(o.timeout, "");
  EXPECT_EQ(o.timeline, "");
  EXPECT_EQ(o.program, Args({"prog"}));
}

TEST(Cli, EveryFlag) {
  const auto o = parse({"-np", "16", "--pipeline-parallel-degree", "2", "--tensor-parallel-degree", "4",
                        "--placement", "spread", "-H", "a:8,b:8", "--bind", "core", "--timeout", "30",
                        "--check", "--timeline", "/tmp/t.json", "--tag-output", "-x", "A=1", "-x", "B",
                        "--mpirun", "/opt/ompi/bin/mpirun", "--mpi-args", "--mca btl self,vader", "--dry-run",
                        "--print-topology", "python3", "train.py"});
  EXPECT_EQ(o.np, 16);
  EXPECT_EQ(o.pp, 2);
  EXPECT_EQ(o.tp, 4);
  EXPECT_EQ(o.placement, "spread");
  EXPECT_EQ(o.hosts, "a:8,b:8");
  EXPECT_EQ(o.bind, "core");
  EXPECT_EQ(o.timeout, "30");
  EXPECT_TRUE(o.check && o.tag_output && o.dry_run && o.print_topology);
  EXPECT_EQ(o.timeline, "/tmp/t.json");
  EXPECT_EQ(o.exports, Args({"A=1", "B"}));  // -x takes one value, not the program
  EXPECT_EQ(o.mpirun, "/opt/ompi/bin/mpirun");
  EXPECT_EQ(o.mpi_args, "--mca btl self,vader");
  EXPECT_EQ(o.program, Args({"python3", "train.py"}));
  EXPECT_EQ(parse({"--hostfile", "hosts.txt", "p"}).hostfile, "hosts.txt");
  EXPECT_EQ(parse({"--pp=3", "--tp=2", "-np=6", "p"}).pp, 3);
}

TEST(Cli, NpSpellings) {
  EXPECT_EQ(parse({"-np", "4", "p"}).np, 4);
  EXPECT_EQ(parse({"-np=5", "p"}).np, 5);
  EXPECT_EQ(parse({"--np", "6", "p"}).np, 6);
  EXPECT_EQ(parse({"-n", "7", "p"}).np, 7);
  EXPECT_EQ(parse({"-n8", "p"}).np, 8);
}

TEST(Cli, ProgramArgumentsPassUntouched) {
  // Options after the program belong to it, -np included (not rewritten).
  auto o = parse({"-np", "2", "mpiexec", "-np", "3", "--pp", "9", "--", "x"});
  EXPECT_EQ(o.np, 2);
  EXPECT_EQ(o.pp, 1);
  EXPECT_EQ(o.program, Args({"mpiexec", "-np", "3", "--pp", "9", "--", "x"}));
  o = parse({"--pp", "2", "--", "-weird", "--help"});
  EXPECT_EQ(o.pp, 2);
  EXPECT_EQ(o.program, Args({"-weird", "--help"}));
  o = parse({"--", "prog", "--version"});
  EXPECT_EQ(o.program, Args({"prog", "--version"}));
}

TEST(Cli, HelpAndVersion) {
  Command c = parse_command_line({"--help"});
  EXPECT_EQ(c.kind, Command::Help);
  for (const char *flag : {"--np", "--pp", "--tp", "--placement", "--hosts", "--hostfile", "--bind", "--timeout",
                           "--check", "--timeline", "--tag-output", "-x", "--mpirun", "--mpi-args", "--dry-run",
                           "--print-topology", "--version"})
    EXPECT_NE(c.text.find(flag), std::string::npos) << flag;
  c = parse_command_line({"--version"});
  EXPECT_EQ(c.kind, Command::Version);
  EXPECT_EQ(c.text, std::string("smprun ") + SMP_VERSION_STRING + "\n");
  EXPECT_EQ(parse_command_line({"-h"}).kind, Command::Help);
}

TEST(Cli, MistakesAreOneLineUsageErrors) {
  const std::vector<std::pair<Args, std::string>> cases = {
      {{}, "no program"},
      {{"-np", "2"}, "no program"},
      {{"-np", "2", "--"}, "no program"},
      {{"-np"}, "np"},
      {{"-np", "x", "p"}, "x"},
      {{"-np", "0", "p"}, "-np must be at least 1"},
      {{"--pp", "0", "p"}, "--pp must be at least 1"},
      {{"--tp", "-2", "p"}, "--tp must be at least 1"},
      {{"--bogus", "p"}, "unknown option '--bogus'"},
      {{"--bogus"}, "unknown option"},
      {{"-q", "p"}, "unknown option '-q'"},
      {{"-np", "2", "--frobnicate=3", "p"}, "unknown option '--frobnicate=3'"},
      {{"-H", "a", "--hostfile", "f", "p"}, "one of them"},
      {{"--timeout", "0", "p"}, "--timeout must be a positive number"},
      {{"--timeout", "soon", "p"}, "--timeout must be a positive number"},
      {{"-x", "1A=2", "p"}, "-x '1A=2'"},
      {{"-x", "=v", "p"}, "-x '=v'"},
      {{"--mpirun", "", "p"}, "--mpirun"},
  };
  for (const auto &[args, words] : cases) {
    const std::string e = error_of(args);
    EXPECT_NE(e.find(words), std::string::npos) << "args [" << ::testing::PrintToString(args) << "]: " << e;
    EXPECT_EQ(e.find('\n'), std::string::npos) << e;
  }
}
